//! Free-text search and the list tabs' counts, at millions of tickets.
//!
//! A search is answered one of two ways, chosen per request by how many
//! tickets match:
//! - at most [`EXACT_UP_TO`]: the substring index finds them all (SQLite's
//!   FTS5 trigram table; PostgreSQL's `pg_trgm` GIN index), their keys are read
//!   in one query, and the counts are exact;
//! - more (a common word, or a term that names a status or a category): the
//!   page walks the list's order and tests each row (a few rows per hit), and
//!   the counts are estimated from the newest [`SAMPLE`] tickets of the scope,
//!   scaled to the scope's exact per-status totals; the response says so.
//!
//! With no search, the counts of a list narrowed only by account and status
//! come from `ticket_counts`, kept by triggers (see the migration).
use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, LikeExpr, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityName, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};

use super::db_error;
use super::tickets::{Stored, TicketFilter, TicketTable, Tie, parse_code};
use crate::domain::consultation::Consultation;
use crate::domain::incident::Incident;
use crate::domain::text::like_contains;
use crate::domain::ticket::{Named, Search};
use crate::domain::{Code, Error};

/// Up to this many matches a search's counts are exact.
pub const EXACT_UP_TO: usize = 10_000;
/// How many of the newest tickets estimate the counts of a larger result.
pub const SAMPLE: u64 = 2_000;

/// How a search term is tested against the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Matching {
    /// Row by row (`LIKE`), in whatever order the query walks: cheap when
    /// matches are common.
    #[default]
    Scan,
    /// Through the substring index. Only SQLite needs to be told: there the
    /// FTS5 table is another table; PostgreSQL's planner uses its trigram
    /// index for the same `LIKE` by itself.
    Index,
}

impl Matching {
    /// For reading every match (exports): through the index where it is a
    /// table of its own to join (SQLite).
    pub fn for_all_matches(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Sqlite => Self::Index,
            _ => Self::Scan,
        }
    }
}

/// The version of the search text `Ticket::search_text` builds; rows holding
/// an older one are rewritten at start ([`reindex`]).
pub const SEARCH_VERSION: i64 = 1;

fn column(named: Named) -> &'static str {
    match named {
        Named::Status => "status",
        Named::Kind => "kind",
        Named::Category => "category_code",
        Named::Carrier => "carrier_code",
    }
}

/// The FTS5 query for a folded term: a phrase, which the trigram tokenizer
/// matches as a substring; `None` for terms shorter than a trigram, which no
/// trigram index can serve.
fn phrase(folded: &str) -> Option<String> {
    (folded.chars().count() >= 3).then(|| format!("\"{}\"", folded.replace('"', "\"\"")))
}

/// The condition a row of `E` meets when `search` matches it: its search
/// text holds the term, or one of its codes is named by the term.
pub fn predicate<E: TicketTable>(search: &Search, matching: Matching) -> SimpleExpr {
    let table = E::default().table_name().to_owned();
    let text = match (matching, phrase(&search.folded)) {
        (Matching::Index, Some(phrase)) => Expr::cust_with_values(
            format!(
                "\"{table}\".rowid IN (SELECT rowid FROM \"{table}_search\" \
                 WHERE \"{table}_search\" MATCH ?)"
            ),
            [phrase],
        ),
        // The search text is folded (see `domain::text::fold`); so is the pattern.
        _ => Expr::col(E::SEARCH_TEXT)
            .like(LikeExpr::new(like_contains(&search.folded)).escape('\\')),
    };
    search.named.iter().fold(text, |any, (named, codes)| {
        any.or(Expr::col(Alias::new(column(*named))).is_in(codes.iter().cloned()))
    })
}

/// Where a ticket stands in a list: enough to count it, order it and fetch it.
pub struct Key<T: Stored> {
    pub id: String,
    pub created_at: i64,
    pub tie: Tie<T>,
    pub status: T::Status,
}

/// The keys of every ticket `filter` (whose search is set) matches, when
/// there are at most [`EXACT_UP_TO`]; `None` when there are more, or when the
/// term names a status or a catalog entry (a broad result by nature).
pub async fn probe<T: Stored>(
    conn: &impl ConnectionTrait,
    filter: &T::Filter,
) -> Result<Option<Vec<Key<T>>>, Error> {
    let mut filter = filter.clone();
    let common = filter.common();
    let Some(search) = &common.search else {
        return Ok(None);
    };
    if !search.named.is_empty() {
        return Ok(None);
    }
    if conn.get_database_backend() == DbBackend::Sqlite
        && let Some(phrase) = phrase(&search.folded)
    {
        // Bound the index's work before the scope narrows it: a common
        // term has hundreds of thousands of matches.
        let table = T::Table::default().table_name().to_owned();
        let sql = format!(
            "SELECT count(*) FROM (SELECT rowid FROM \"{table}_search\" \
             WHERE \"{table}_search\" MATCH ? LIMIT ?)"
        );
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                [phrase.into(), (EXACT_UP_TO as i64 + 1).into()],
            ))
            .await
            .map_err(db_error)?;
        let matches: i64 = row
            .map(|r| r.try_get_by_index(0))
            .transpose()
            .map_err(db_error)?
            .unwrap_or(0);
        if matches > EXACT_UP_TO as i64 {
            return Ok(None);
        }
        common.matching = Matching::Index;
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        // Reading 10,001 matches to learn that there are more costs ~90 ms
        // at 1M rows for a term in 7 % of them (an agent's surname). The
        // planner's estimate (pg_trgm's statistics: within 10 % for such
        // terms, 3× high for rare ones) tells those apart for 1 ms.
        let ids = filter
            .apply(T::Table::find())
            .select_only()
            .column(T::Table::ID)
            .build(DbBackend::Postgres);
        if expected_rows(conn, ids).await? > (3 * EXACT_UP_TO) as f64 {
            return Ok(None);
        }
    }
    let mut keys = filter.apply(T::Table::find());
    if conn.get_database_backend() == DbBackend::Postgres {
        // Newest first, as a list walks: for a term the planner expects in
        // many rows it then walks the order index and stops at the limit
        // (a common word in a 30-day range: ~20 ms) instead of building the
        // trigram index's bitmap of every match (270 ms at 1M rows).
        keys = keys.order_by_desc(T::Table::CREATED_AT);
    }
    let rows: Vec<(String, i64, Tie<T>, String)> = keys
        .select_only()
        .column(T::Table::ID)
        .column(T::Table::CREATED_AT)
        .column(T::Table::TIE)
        .column(T::Table::STATUS)
        .limit(EXACT_UP_TO as u64 + 1)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    if rows.len() > EXACT_UP_TO {
        return Ok(None);
    }
    rows.into_iter()
        .map(|(id, created_at, tie, status)| {
            let status = parse_code("status", &id, &status)?;
            Ok(Key {
                id,
                created_at,
                tie,
                status,
            })
        })
        .collect::<Result<Vec<_>, Error>>()
        .map(Some)
}

/// PostgreSQL: how many rows the planner expects `query` to return.
async fn expected_rows(conn: &impl ConnectionTrait, query: Statement) -> Result<f64, Error> {
    let explain = Statement {
        sql: format!("EXPLAIN (FORMAT JSON) {}", query.sql),
        ..query
    };
    let plan: Option<serde_json::Value> = conn
        .query_one_raw(explain)
        .await
        .map_err(db_error)?
        .map(|row| row.try_get_by_index(0))
        .transpose()
        .map_err(db_error)?;
    Ok(plan
        .as_ref()
        .and_then(|p| p[0]["Plan"]["Plan Rows"].as_f64())
        .unwrap_or(0.0))
}

/// The tickets of `keys`, in the keys' order.
pub async fn fetch<T: Stored>(
    conn: &impl ConnectionTrait,
    keys: &[Key<T>],
) -> Result<Vec<T>, Error> {
    let query = T::Table::find().filter(T::Table::ID.is_in(keys.iter().map(|k| k.id.clone())));
    let mut found: HashMap<String, T> = super::decoded(conn, query, T::from_row)
        .await?
        .into_iter()
        .map(|t| (t.header().id.clone(), t))
        .collect();
    Ok(keys.iter().filter_map(|k| found.remove(&k.id)).collect())
}

/// How many tickets per status `filter` picks, leaving its search aside:
/// from `ticket_counts` when only the account narrows it, else counted.
pub async fn totals<T: Stored>(
    conn: &impl ConnectionTrait,
    filter: &T::Filter,
) -> Result<Vec<(T::Status, i64)>, Error> {
    let mut filter = filter.clone();
    filter.common().search = None;
    if !filter.is_plain() {
        return super::tickets::count_by_status::<T>(conn, &filter).await;
    }
    let backend = conn.get_database_backend();
    let account = filter.common().account.clone();
    let (sql, values) = match (&account, backend) {
        (Some(account), DbBackend::Postgres) => (
            "SELECT status, CAST(SUM(n) AS BIGINT) FROM ticket_counts \
             WHERE ticket_type = $1 AND account = $2 GROUP BY status",
            vec![T::TYPE.as_str().into(), account.clone().into()],
        ),
        (Some(account), _) => (
            "SELECT status, SUM(n) FROM ticket_counts \
             WHERE ticket_type = ? AND account = ? GROUP BY status",
            vec![T::TYPE.as_str().into(), account.clone().into()],
        ),
        (None, DbBackend::Postgres) => (
            "SELECT status, CAST(SUM(n) AS BIGINT) FROM ticket_counts \
             WHERE ticket_type = $1 GROUP BY status",
            vec![T::TYPE.as_str().into()],
        ),
        (None, _) => (
            "SELECT status, SUM(n) FROM ticket_counts WHERE ticket_type = ? GROUP BY status",
            vec![T::TYPE.as_str().into()],
        ),
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(db_error)?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get_by_index(0).map_err(db_error)?;
        let n: i64 = row.try_get_by_index(1).map_err(db_error)?;
        if n > 0 {
            counts.push((parse_code("status", "counted", &status)?, n));
        }
    }
    Ok(counts)
}

/// Estimated matches per status of a search with too many to count: among
/// the scope's newest [`SAMPLE`] tickets, the share of each status's that
/// match (of all of them together, for a status with too few there), times
/// that status's exact total in `totals`.
pub async fn estimate<T: Stored>(
    conn: &impl ConnectionTrait,
    filter: &T::Filter,
    totals: &[(T::Status, i64)],
) -> Result<Vec<(T::Status, i64)>, Error> {
    let mut scope = filter.clone();
    let Some(search) = scope.common().search.take() else {
        return Ok(totals.to_vec());
    };
    let matched = predicate::<T::Table>(&search, Matching::Scan);
    let sample: Vec<(String, bool)> = scope
        .apply(T::Table::find())
        .select_only()
        .column(T::Table::STATUS)
        .column_as(matched, "matched")
        .order_by_desc(T::Table::CREATED_AT)
        .limit(SAMPLE)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut seen: HashMap<&str, (i64, i64)> = HashMap::new();
    for (status, hit) in &sample {
        let entry = seen.entry(status.as_str()).or_default();
        entry.0 += 1;
        entry.1 += i64::from(*hit);
    }
    let all = seen
        .values()
        .fold((0, 0), |(n, m), (sn, sm)| (n + sn, m + sm));
    const ENOUGH: i64 = 30;
    Ok(totals
        .iter()
        .map(|(status, total)| {
            let (n, m) = match seen.get(status.as_str()) {
                Some(&(n, m)) if n >= ENOUGH => (n, m),
                _ => all,
            };
            let share = if n == 0 { 0.0 } else { m as f64 / n as f64 };
            (*status, (*total as f64 * share).round() as i64)
        })
        .collect())
}

/// Brings every row's search text to [`SEARCH_VERSION`] (rows written before
/// the search text gained a field); the index follows through its triggers.
/// Runs at start, after the migrations; a no-op once done.
pub async fn reindex(db: &DatabaseConnection) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let version = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT version FROM search_state WHERE id = 1",
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if version >= SEARCH_VERSION {
        return Ok(());
    }
    let rewritten = rewrite::<Incident>(db).await? + rewrite::<Consultation>(db).await?;
    let sql = match backend {
        DbBackend::Postgres => "UPDATE search_state SET version = $1 WHERE id = 1",
        _ => "UPDATE search_state SET version = ? WHERE id = 1",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [SEARCH_VERSION.into()],
    ))
    .await?;
    tracing::info!(rewritten, version = SEARCH_VERSION, "search text rebuilt");
    Ok(())
}

/// Rewrites the search text of every row of `T` whose text is not what
/// `Ticket::search_text` builds now; how many it rewrote.
async fn rewrite<T: Stored>(db: &DatabaseConnection) -> anyhow::Result<u64> {
    const BATCH: u64 = 1_000;
    let mut after = String::new();
    let mut rewritten = 0;
    loop {
        let ids: Vec<String> = T::Table::find()
            .select_only()
            .column(T::Table::ID)
            .filter(T::Table::ID.gt(after.clone()))
            .order_by_asc(T::Table::ID)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = ids.last() else {
            return Ok(rewritten);
        };
        after = last.clone();
        let rows = T::Table::find()
            .filter(T::Table::ID.is_in(ids))
            .all(db)
            .await?;
        let txn = db.begin().await?;
        for row in rows {
            let ticket = match T::from_row(row) {
                Ok(ticket) => ticket,
                Err(e) => {
                    tracing::warn!(error = %e, "search text not rebuilt for an unreadable row");
                    continue;
                }
            };
            let text = ticket.search_text();
            let result = T::Table::update_many()
                .col_expr(T::Table::SEARCH_TEXT, Expr::value(text.clone()))
                .filter(T::Table::ID.eq(ticket.header().id.clone()))
                .filter(T::Table::SEARCH_TEXT.ne(text))
                .exec(&txn)
                .await?;
            rewritten += result.rows_affected;
        }
        txn.commit().await?;
    }
}

/// What a bulk load into one ticket table set aside (see [`suspend_upkeep`]).
#[must_use = "the table has no search index, counts or secondary indexes until `resume`"]
pub struct Upkeep {
    table: String,
    ticket_type: &'static str,
    /// The statements that put back what was set aside, in order.
    restore: Vec<String>,
}

/// For a bulk load into `T`'s table (the seeder, on a database nobody
/// else writes to): sets aside what each inserted row would otherwise
/// maintain one by one — the table's triggers (the search index and the
/// counts) and its secondary indexes — keeping their definitions as the
/// database holds them. [`Upkeep::resume`] puts them back, rebuilds the
/// search index and recounts, which costs a fraction of the per-row upkeep.
pub async fn suspend_upkeep<T: Stored>(conn: &impl ConnectionTrait) -> Result<Upkeep, Error> {
    let backend = conn.get_database_backend();
    let table = T::Table::default().table_name().to_owned();
    let sql = match backend {
        // Indexes that back a constraint (the primary key, UNIQUE columns)
        // stay: they cannot be dropped on their own.
        DbBackend::Postgres => {
            "SELECT 'INDEX', indexname, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = $1 AND indexname NOT IN \
             (SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)"
        }
        // `sql` is NULL for the indexes SQLite makes for constraints.
        _ => {
            "SELECT upper(type), name, sql FROM sqlite_master \
             WHERE tbl_name = ? AND type IN ('trigger', 'index') AND sql IS NOT NULL"
        }
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [table.clone().into()],
        ))
        .await
        .map_err(db_error)?;
    let mut restore = Vec::with_capacity(rows.len() + 1);
    for row in rows {
        let kind: String = row.try_get_by_index(0).map_err(db_error)?;
        let name: String = row.try_get_by_index(1).map_err(db_error)?;
        let definition: String = row.try_get_by_index(2).map_err(db_error)?;
        conn.execute_unprepared(&format!("DROP {kind} {name}"))
            .await
            .map_err(db_error)?;
        restore.push(definition);
    }
    if backend == DbBackend::Postgres {
        conn.execute_unprepared(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .await
            .map_err(db_error)?;
        restore.push(format!("ALTER TABLE {table} ENABLE TRIGGER USER"));
    }
    Ok(Upkeep {
        table,
        ticket_type: T::TYPE.as_str(),
        restore,
    })
}

impl Upkeep {
    /// Puts back what [`suspend_upkeep`] set aside, indexes the rows'
    /// search text and recounts the table's tickets per account and status.
    pub async fn resume(self, conn: &impl ConnectionTrait) -> Result<(), Error> {
        let Upkeep {
            table,
            ticket_type,
            restore,
        } = self;
        let backend = conn.get_database_backend();
        let mut statements = restore;
        if backend == DbBackend::Sqlite {
            // A larger in-memory hash while rebuilding writes fewer, larger
            // segments to merge; then back to FTS5's default (1 MiB).
            let set = |name: &str, value: i64| {
                format!(
                    "INSERT INTO {table}_search ({table}_search, rank) VALUES ('{name}', {value})"
                )
            };
            statements.push(set("hashsize", 256 << 20));
            statements.push(format!(
                "INSERT INTO {table}_search ({table}_search) VALUES ('rebuild')"
            ));
            statements.push(set("hashsize", 1 << 20));
        }
        statements.push(format!(
            "DELETE FROM ticket_counts WHERE ticket_type = '{ticket_type}'"
        ));
        statements.push(format!(
            "INSERT INTO ticket_counts (ticket_type, account, status, n) \
             SELECT '{ticket_type}', account, status, count(*) FROM {table} \
             GROUP BY account, status"
        ));
        for sql in statements {
            conn.execute_unprepared(&sql).await.map_err(db_error)?;
        }
        Ok(())
    }
}
