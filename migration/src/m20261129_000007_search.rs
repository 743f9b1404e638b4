//! Search that stays fast at millions of tickets (issue #13):
//! - a substring index over each table's folded `search_text`: on SQLite an
//!   FTS5 table with the trigram tokenizer, kept by triggers in the same
//!   transaction as the row; on PostgreSQL a `pg_trgm` GIN index;
//! - `ticket_counts`, the tickets per (type, account, status), kept by
//!   triggers, which answer the list tabs' counts when nothing but the account
//!   and the status narrows a list;
//! - the lists' order index, (created_at, tie), gains the status;
//! - `search_state`, the version of the search text the rows hold; the server
//!   rewrites older rows' text at start (the text is built in Rust, see
//!   `ticketd::store::search::reindex`), and the index follows through the
//!   triggers.
//!
//! Both are built here for the rows a database already holds.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The ticket tables and the name `ticket_counts` gives their type.
const TABLES: [(&str, &str); 2] = [("incidents", "INCIDENT"), ("consultations", "CONSULTATION")];

/// The lists' order index gains the status, so that a tab (a set of
/// statuses) is told from the index alone: walking a page, and counting a
/// date range, read only the rows of the tab.
const ORDER_INDEXES: [(&str, &str); 2] = [
    ("incidents", "created_at, number, status"),
    ("consultations", "created_at, id, status"),
];

const COUNTS: &str = "CREATE TABLE ticket_counts (
    ticket_type TEXT NOT NULL,
    account TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (ticket_type, account, status)
)";

const STATE: &str = "CREATE TABLE search_state (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)";

fn sqlite(table: &str, ticket_type: &str) -> Vec<String> {
    let add = |row: &str| {
        format!(
            "INSERT INTO ticket_counts (ticket_type, account, status, n) \
             VALUES ('{ticket_type}', {row}.account, {row}.status, 1) \
             ON CONFLICT (ticket_type, account, status) DO UPDATE SET n = n + 1;"
        )
    };
    let remove = |row: &str| {
        format!(
            "UPDATE ticket_counts SET n = n - 1 WHERE ticket_type = '{ticket_type}' \
             AND account = {row}.account AND status = {row}.status;"
        )
    };
    let index = |row: &str| {
        format!(
            "INSERT INTO {table}_search (rowid, search_text) VALUES ({row}.rowid, {row}.search_text);"
        )
    };
    let unindex = |row: &str| {
        format!(
            "INSERT INTO {table}_search ({table}_search, rowid, search_text) \
             VALUES ('delete', {row}.rowid, {row}.search_text);"
        )
    };
    vec![
        format!(
            "CREATE VIRTUAL TABLE {table}_search USING fts5(search_text, \
             content = '{table}', content_rowid = 'rowid', tokenize = 'trigram')"
        ),
        format!("INSERT INTO {table}_search ({table}_search) VALUES ('rebuild')"),
        format!(
            "CREATE TRIGGER {table}_insert AFTER INSERT ON {table} BEGIN {} {} END",
            index("new"),
            add("new")
        ),
        format!(
            "CREATE TRIGGER {table}_delete AFTER DELETE ON {table} BEGIN {} {} END",
            unindex("old"),
            remove("old")
        ),
        format!(
            "CREATE TRIGGER {table}_search_update AFTER UPDATE OF search_text ON {table} \
             WHEN old.search_text IS NOT new.search_text BEGIN {} {} END",
            unindex("old"),
            index("new")
        ),
        format!(
            "CREATE TRIGGER {table}_count_update AFTER UPDATE OF account, status ON {table} \
             WHEN old.account IS NOT new.account OR old.status IS NOT new.status BEGIN {} {} END",
            remove("old"),
            add("new")
        ),
        format!(
            "INSERT INTO ticket_counts (ticket_type, account, status, n) \
             SELECT '{ticket_type}', account, status, count(*) FROM {table} GROUP BY account, status"
        ),
    ]
}

/// One trigger function for both tables; its argument is the ticket type.
const POSTGRES_COUNT_FUNCTION: &str = "CREATE FUNCTION ticket_counts_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE ticket_counts SET n = n - 1
        WHERE ticket_type = TG_ARGV[0] AND account = OLD.account AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ticket_counts (ticket_type, account, status, n)
        VALUES (TG_ARGV[0], NEW.account, NEW.status, 1)
        ON CONFLICT (ticket_type, account, status) DO UPDATE SET n = ticket_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$";

fn postgres(table: &str, ticket_type: &str) -> Vec<String> {
    vec![
        format!("CREATE INDEX {table}_search ON {table} USING gin (search_text gin_trgm_ops)"),
        format!(
            "CREATE TRIGGER {table}_counts AFTER INSERT OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION ticket_counts_follow('{ticket_type}')"
        ),
        format!(
            "CREATE TRIGGER {table}_counts_update AFTER UPDATE OF account, status ON {table} \
             FOR EACH ROW WHEN (OLD.account IS DISTINCT FROM NEW.account \
             OR OLD.status IS DISTINCT FROM NEW.status) \
             EXECUTE FUNCTION ticket_counts_follow('{ticket_type}')"
        ),
        format!(
            "INSERT INTO ticket_counts (ticket_type, account, status, n) \
             SELECT '{ticket_type}', account, status, count(*) FROM {table} GROUP BY account, status"
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let mut statements = vec![COUNTS.to_owned(), STATE.to_owned()];
        statements.push("INSERT INTO search_state (id, version) VALUES (1, 0)".to_owned());
        if backend == DbBackend::Postgres {
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await
                .map_err(|e| {
                    DbErr::Migration(format!(
                        "search needs the pg_trgm extension, which this PostgreSQL refused to \
                         create ({e}). Install the server's contrib package (Debian: \
                         postgresql-contrib) and run `CREATE EXTENSION pg_trgm;` in this \
                         database as a superuser (or grant this user CREATE on it), then start \
                         ticketd again"
                    ))
                })?;
            statements.push(POSTGRES_COUNT_FUNCTION.to_owned());
        }
        for (table, columns) in ORDER_INDEXES {
            statements.push(format!("DROP INDEX {table}_created"));
            statements.push(format!(
                "CREATE INDEX {table}_created ON {table} ({columns})"
            ));
        }
        for (table, ticket_type) in TABLES {
            statements.extend(match backend {
                DbBackend::Postgres => postgres(table, ticket_type),
                _ => sqlite(table, ticket_type),
            });
        }
        for sql in statements {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for (table, _) in TABLES {
            let drops = if postgres {
                vec![
                    format!("DROP TRIGGER IF EXISTS {table}_counts ON {table}"),
                    format!("DROP TRIGGER IF EXISTS {table}_counts_update ON {table}"),
                    format!("DROP INDEX IF EXISTS {table}_search"),
                ]
            } else {
                vec![
                    format!("DROP TRIGGER IF EXISTS {table}_insert"),
                    format!("DROP TRIGGER IF EXISTS {table}_delete"),
                    format!("DROP TRIGGER IF EXISTS {table}_search_update"),
                    format!("DROP TRIGGER IF EXISTS {table}_count_update"),
                    format!("DROP TABLE IF EXISTS {table}_search"),
                ]
            };
            for sql in drops {
                db.execute_unprepared(&sql).await?;
            }
        }
        for (table, columns) in ORDER_INDEXES {
            let columns = columns.trim_end_matches(", status");
            db.execute_unprepared(&format!("DROP INDEX {table}_created"))
                .await?;
            db.execute_unprepared(&format!(
                "CREATE INDEX {table}_created ON {table} ({columns})"
            ))
            .await?;
        }
        if postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS ticket_counts_follow()")
                .await?;
        }
        db.execute_unprepared("DROP TABLE IF EXISTS search_state")
            .await?;
        db.execute_unprepared("DROP TABLE IF EXISTS ticket_counts")
            .await?;
        Ok(())
    }
}
