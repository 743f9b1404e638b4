//! Realistic tickets for search benchmarks (issue #13): Spanish descriptions
//! built from phrase fragments, tracking numbers in each carrier's shape, a
//! few thousand stores, drivers, agents, every status in plausible
//! proportions and a year of creation dates. Tickets are the domain's own
//! (`Incident::file`, `change_status`, `ticket::assign`), so their rows and
//! search text are what the service would have written; the same `--seed`
//! and `until` give the same tickets.
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use ticketd::domain::calendar::Calendar;
use ticketd::domain::catalog::Catalog;
use ticketd::domain::consultation::{
    Complexity, Consultation, ConsultationStatus, NewConsultation, Targets,
};
use ticketd::domain::event::TicketType;
use ticketd::domain::incident::{
    Incident, IncidentKind, IncidentStatus, NewIncident, ResolutionReason, StatusChange,
    TrackingNumber,
};
use ticketd::domain::principal::Role;
use ticketd::domain::text::fold;
use ticketd::domain::ticket::{self, Header, Person};
use ticketd::store::Store;
use ticketd::store::search::suspend_upkeep;
use ticketd::store::tickets::{Stored, insert_many};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const YEAR: i64 = 365 * DAY;

/// What to seed.
#[derive(Debug, Clone)]
pub struct Options {
    pub incidents: u64,
    pub consultations: u64,
    /// Stores (incident requesters), each its own account.
    pub accounts: usize,
    pub seed: u64,
    /// The end of the year of creation dates (µs since the epoch).
    pub until: i64,
    /// Rows per transaction.
    pub batch: usize,
}

/// Who files the seeded tickets, and the seed that makes them (the
/// arguments of the seeder and of the search bench).
#[derive(clap::Args)]
// Without these, clap would show the doc comment above as the description
// of every binary that flattens it in.
#[command(about = None, long_about = None)]
pub struct Population {
    /// Stores filing incidents, one account each.
    #[arg(long, default_value_t = 3000)]
    pub accounts: usize,
    /// The same seed gives the same tickets (in the seeder, with the same
    /// `--until`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What was seeded, and values taken from it that searches can look for.
#[derive(Debug, Default)]
pub struct Seeded {
    pub rows: u64,
    /// Time spent generating and inserting (not migrating or analyzing).
    pub seconds: f64,
    /// A sample of the incidents' tracking numbers.
    pub tracking_numbers: Vec<String>,
    /// A sample of the consultations' order references.
    pub order_references: Vec<String>,
    /// The largest number of each type.
    pub last_incident: i64,
    pub last_consultation: i64,
}

/// How many sampled values `Seeded` keeps per kind.
const SAMPLES: usize = 200;

/// Migrates `url` as the server does, then fills it.
pub async fn seed(url: &str, options: &Options) -> anyhow::Result<Seeded> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let catalog = Arc::new(ticketd::store::catalog::load(store.conn()).await?);
    let started = Instant::now();
    let people = Arc::new(People::new(options));
    let generator = Generator::new(options, catalog.clone(), people.clone(), 1);
    let (incidents, tracking_numbers) = fill(&store, options, generator, |g, i| {
        let t = g.incident(i);
        let sample = t.tracking_number.as_str().to_owned();
        (t, sample)
    })
    .await?;
    let generator = Generator::new(options, catalog.clone(), people, 2);
    let (consultations, order_references) = fill(&store, options, generator, |g, i| {
        let t = g.consultation(i);
        let sample = t.order_reference.clone().unwrap_or_default();
        (t, sample)
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    if store.backend() == DbBackend::Postgres {
        // What autovacuum does soon after a bulk load: statistics for the
        // planner and a visibility map for index-only scans.
        store
            .conn()
            .execute_unprepared("VACUUM ANALYZE incidents, consultations")
            .await?;
    }
    store.close().await;
    Ok(Seeded {
        rows: options.incidents + options.consultations,
        seconds,
        tracking_numbers,
        order_references: order_references
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect(),
        last_incident: incidents,
        last_consultation: consultations,
    })
}

/// Generates `options`' count of one ticket type on a thread of its own and
/// inserts them in creation order, `options.batch` rows per transaction.
/// Returns the last number given and a sample of `make`'s second values.
async fn fill<T: Stored>(
    store: &Store,
    options: &Options,
    mut generator: Generator,
    make: fn(&mut Generator, u64) -> (T, String),
) -> anyhow::Result<(i64, Vec<String>)> {
    let n = match T::TYPE {
        TicketType::Incident => options.incidents,
        TicketType::Consultation => options.consultations,
    };
    let batch = options.batch.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<_>>(4);
    // Rows and their search text are made here too, beside the tickets: on
    // the inserting task they took more time than the database did.
    let producer = std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(SAMPLES);
        let mut rows = Vec::with_capacity(batch);
        for i in 0..n {
            let (ticket, sample) = make(&mut generator, i);
            // Reservoir sampling: every ticket equally likely to be kept.
            if samples.len() < SAMPLES {
                samples.push(sample);
            } else {
                let slot = generator.rng.random_range(0..=i) as usize;
                if slot < SAMPLES {
                    samples[slot] = sample;
                }
            }
            rows.push(ticket.to_row());
            if rows.len() == batch && tx.blocking_send(std::mem::take(&mut rows)).is_err() {
                break;
            }
        }
        if !rows.is_empty() {
            let _ = tx.blocking_send(rows);
        }
        (generator.last_number, samples)
    });
    // With one batch at a time the PostgreSQL backend spent most of the load
    // waiting for the client (ClientRead) while the client was mostly idle
    // too (15.6k rows/s); sqlx leaves Nagle's algorithm on and a statement of
    // a thousand rows spans many segments, a likely cause. So there a few
    // batches are in flight at once: each still in creation order,
    // neighbouring ones interleaved. SQLite has one writer anyway.
    let in_flight = match store.backend() {
        DbBackend::Postgres => 3,
        _ => 1,
    };
    // Nobody else writes here: the index, counts and secondary indexes are
    // built once at the end instead of row by row.
    let upkeep = suspend_upkeep::<T>(store.conn()).await?;
    tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(Ok)
        .try_for_each_concurrent(in_flight, |rows| async move {
            let txn = store.conn().begin().await?;
            if store.backend() == DbBackend::Sqlite {
                // The indexes outgrow SQLite's default 2 MB page cache within
                // the first 100k rows; past that every insert reads pages back.
                txn.execute_unprepared("PRAGMA cache_size = -131072")
                    .await?;
            }
            insert_many::<T>(&txn, rows).await?;
            txn.commit().await?;
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    upkeep.resume(store.conn()).await?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the ticket generator panicked"))
}

/// The year's creation instants, increasing: more tickets as the business
/// grows (twice as many a day at the end as at the start), all between 07:00
/// and 21:00 in Mexico City, on the 365 days before the one `until` falls on.
fn created_at(i: u64, n: u64, jitter: f64, until: i64) -> i64 {
    let x = (i as f64 + jitter) / n.max(1) as f64;
    // Inverse of the cumulative share of a linearly growing daily rate.
    let t = ((1.0 + 8.0 * x).sqrt() - 1.0) / 2.0;
    let days = t * 365.0;
    let day = days.floor();
    let local_hour = 7.0 + 14.0 * (days - day);
    // Mexico City is UTC-6 all year: its days start at 06:00 UTC.
    let today = until - (until - 6 * HOUR).rem_euclid(DAY);
    let first_day = today - 365 * DAY;
    first_day + (day as i64) * DAY + (local_hour * HOUR as f64) as i64
}

/// Who files and works tickets.
struct People {
    stores: Vec<Person>,
    drivers: Vec<(String, Person)>,
}

impl People {
    fn new(options: &Options) -> Self {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let stores = (0..options.accounts.max(1))
            .map(|k| {
                let mut name = format!(
                    "{} {}",
                    pick(&mut rng, STORE_KINDS),
                    pick(&mut rng, STORE_NAMES)
                );
                if rng.random_bool(0.2) {
                    name = format!("{name} {}", pick(&mut rng, BRANCHES));
                }
                Person {
                    id: format!("tienda-{k:05}"),
                    name,
                }
            })
            .collect();
        let drivers = (0..5000)
            .map(|k| {
                let fleet = format!("flota-{}", fold(pick(&mut rng, CITIES)).replace(' ', "-"));
                let name = format!(
                    "{} {} {}",
                    pick(&mut rng, FIRST_NAMES),
                    pick(&mut rng, SURNAMES),
                    pick(&mut rng, SURNAMES)
                );
                (
                    fleet,
                    Person {
                        id: format!("chofer-{k:05}"),
                        name,
                    },
                )
            })
            .collect();
        Self { stores, drivers }
    }
}

/// The agents tickets are assigned to: (id, name).
pub const AGENTS: &[(&str, &str)] = &[
    ("ana.lopez", "Ana López"),
    ("jose.ramirez", "José Ramírez"),
    ("maria.fernandez", "María Fernández"),
    ("sofia.nunez", "Sofía Núñez"),
    ("andres.gutierrez", "Andrés Gutiérrez"),
    ("monica.pena", "Mónica Peña"),
    ("raul.dominguez", "Raúl Domínguez"),
    ("lucia.martinez", "Lucía Martínez"),
    ("hector.sanchez", "Héctor Sánchez"),
    ("veronica.diaz", "Verónica Díaz"),
    ("ivan.munoz", "Iván Muñoz"),
    ("valeria.hernandez", "Valeria Hernández"),
    ("jesus.perez", "Jesús Pérez"),
    ("fernanda.gomez", "Fernanda Gómez"),
    ("oscar.jimenez", "Óscar Jiménez"),
    ("daniela.vazquez", "Daniela Vázquez"),
    ("julian.morales", "Julián Morales"),
    ("ruben.castaneda", "Rubén Castañeda"),
    ("adrian.ibanez", "Adrián Ibáñez"),
    ("begona.suarez", "Begoña Suárez"),
    ("tomas.alvarez", "Tomás Álvarez"),
    ("ramon.juarez", "Ramón Juárez"),
    ("ines.cortes", "Inés Cortés"),
    ("sebastian.rodriguez", "Sebastián Rodríguez"),
    ("angeles.mendez", "Ángeles Méndez"),
    ("efrain.solis", "Efraín Solís"),
    ("noemi.benitez", "Noemí Benítez"),
    ("joaquin.chavez", "Joaquín Chávez"),
    ("regina.marquez", "Regina Márquez"),
    ("german.ordonez", "Germán Ordóñez"),
];

/// Words of the descriptions, for searches that must match: the products'
/// nouns (each in well under 1 % of incidents).
pub fn rare_words() -> Vec<String> {
    PRODUCTS
        .iter()
        .filter_map(|p| p.split_whitespace().nth(1))
        .filter(|w| w.chars().count() >= 6)
        .map(str::to_owned)
        .collect()
}

/// Words of the descriptions that carry accents.
pub fn accented_words() -> Vec<String> {
    PRODUCTS
        .iter()
        .chain(DAMAGES)
        .chain(CLIENT_OPENINGS)
        .flat_map(|p| p.split_whitespace())
        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()))
        .filter(|w| w.chars().count() >= 5 && !w.is_ascii())
        .map(str::to_owned)
        .collect()
}

/// Words in about 60 % of each type's descriptions.
pub const COMMON_WORDS: &[&str] = &["cliente", "favor"];

/// One ticket type's generator.
struct Generator {
    rng: StdRng,
    catalog: Arc<Catalog>,
    people: Arc<People>,
    calendar: Calendar,
    targets: Targets,
    until: i64,
    n: u64,
    last_number: i64,
    shipment_categories: Vec<String>,
    charge_categories: Vec<String>,
    consultation_categories: Vec<(String, Option<Complexity>)>,
}

impl Generator {
    fn new(options: &Options, catalog: Arc<Catalog>, people: Arc<People>, stream: u64) -> Self {
        let n = match stream {
            1 => options.incidents,
            _ => options.consultations,
        };
        let incident_categories = |kind| {
            catalog
                .categories_of(TicketType::Incident)
                .filter(|c| c.incident_kind == Some(kind))
                .map(|c| c.code.clone())
                .collect()
        };
        Self {
            shipment_categories: incident_categories(IncidentKind::Shipment),
            charge_categories: incident_categories(IncidentKind::AdditionalCharge),
            consultation_categories: catalog
                .categories_of(TicketType::Consultation)
                .map(|c| (c.code.clone(), c.complexity))
                .collect(),
            rng: StdRng::seed_from_u64(options.seed.wrapping_mul(31).wrapping_add(stream)),
            catalog,
            people,
            calendar: Calendar::mexico_default(),
            targets: Targets::default(),
            until: options.until,
            n,
            last_number: 0,
        }
    }

    /// A header filed by `requester` of `account` at `at`.
    fn header(&mut self, account: String, requester: Person, at: i64, numbered: bool) -> Header {
        let mut random = [0u8; 10];
        self.rng.fill(&mut random);
        let id = uuid::Builder::from_unix_timestamp_millis((at / 1000) as u64, &random);
        let number = numbered.then(|| {
            self.last_number += 1;
            self.last_number
        });
        Header {
            id: id.into_uuid().to_string(),
            number,
            account,
            requester,
            assignee: None,
            version: 1,
            created_at: at,
            updated_at: at,
            breached_at: None,
            idempotency: None,
            contacts: Default::default(),
        }
    }

    /// An agent, few of them taking most of the work.
    fn agent(&mut self) -> Person {
        let k = (AGENTS.len() as f64 * self.rng.random::<f64>().powf(1.5)) as usize;
        let (id, name) = AGENTS[k.min(AGENTS.len() - 1)];
        Person {
            id: id.into(),
            name: name.into(),
        }
    }

    /// The instant `hours` (with some spread) after `from`, but not past `until`.
    fn later(&mut self, from: i64, hours: f64) -> i64 {
        let spread = self.rng.random_range(0.5..1.5);
        (from + (hours * spread * HOUR as f64) as i64).min(self.until - 1)
    }

    fn incident(&mut self, i: u64) -> Incident {
        let jitter = self.rng.random::<f64>();
        let at = created_at(i, self.n, jitter, self.until);
        // Stores' sizes differ a lot: a few file most incidents.
        let k = (self.people.stores.len() as f64 * self.rng.random::<f64>().powi(3)) as usize;
        let store = self.people.stores[k.min(self.people.stores.len() - 1)].clone();
        let header = self.header(store.id.clone(), store, at, true);
        let carrier = pick(&mut self.rng, CARRIER_CODES);
        let kind = match self.rng.random_bool(0.8) {
            true => IncidentKind::Shipment,
            false => IncidentKind::AdditionalCharge,
        };
        let categories = match kind {
            IncidentKind::Shipment => &self.shipment_categories,
            IncidentKind::AdditionalCharge => &self.charge_categories,
        };
        let category = categories[self.rng.random_range(0..categories.len())].clone();
        // A few are filed after the carrier's claim window: created declined.
        let shipped_days = match self.rng.random_bool(0.01) {
            true => 90,
            false => self.rng.random_range(1..6),
        };
        let new = NewIncident {
            kind,
            tracking_number: TrackingNumber::stored(self.tracking_number(carrier)),
            carrier: carrier.into(),
            description: self.incident_text(&category),
            category,
            shipped_at: Some(at - shipped_days * DAY),
            claimed_amount: None,
            idempotency_key: None,
            contact_email: None,
        };
        let time_zone = self.calendar.time_zone();
        let filed = Incident::file(header, new, &self.catalog, time_zone);
        let mut t = match filed {
            Ok(outcome) => outcome.next,
            Err(e) => panic!("the generator filed an invalid incident: {e}"),
        };
        if t.status == IncidentStatus::NewTicket {
            t = self.work_incident(t);
        }
        // As a server running all year left them: open incidents past their
        // estimate, and those resolved after it, were marked breached.
        if let Some(due) = t.estimated_resolution_at
            && t.paused_since.is_none()
            && due < t.resolved_at.unwrap_or(self.until)
        {
            t.header.breached_at = Some(due);
        }
        t
    }

    /// Moves a new incident to a status drawn for its age. One left waiting
    /// for data must still be waiting at `until` (the server would close it
    /// at once); otherwise it is worked on instead.
    fn work_incident(&mut self, t: Incident) -> Incident {
        use IncidentStatus::*;
        let age = self.until - t.header.created_at;
        let weights: &[(IncidentStatus, u32)] = if age < 2 * DAY {
            &[
                (NewTicket, 40),
                (MissingData, 10),
                (InProgress, 30),
                (PreApproved, 5),
                (Finalized, 10),
                (Declined, 2),
                (Cancelled, 3),
            ]
        } else if age < 30 * DAY {
            &[
                (NewTicket, 8),
                (InProgress, 25),
                (PreApproved, 7),
                (Finalized, 45),
                (Declined, 8),
                (Cancelled, 7),
            ]
        } else {
            &[
                (NewTicket, 1),
                (InProgress, 2),
                (PreApproved, 1),
                (Finalized, 78),
                (Declined, 10),
                (Cancelled, 8),
            ]
        };
        let target = weighted(&mut self.rng, weights);
        let worked = self.move_incident(t.clone(), target);
        match worked.auto_close_at {
            Some(at) if at <= self.until + HOUR => self.move_incident(t, InProgress),
            _ => worked,
        }
    }

    /// `t` moved from NEW_TICKET to `target` along the transitions an agent
    /// would make, assigned on the way.
    fn move_incident(&mut self, t: Incident, target: IncidentStatus) -> Incident {
        use IncidentStatus::*;
        let assigned = target != NewTicket || self.rng.random_bool(0.3);
        let mut t = t;
        let mut now = t.header.created_at;
        if assigned && target != Cancelled {
            now = self.later(now, 0.5);
            let agent = self.agent();
            t = ticket::assign(&t, Some(agent), None, now).next;
        }
        let resolve_hours = self.rng.random_range(24.0..20.0 * 24.0);
        let path: &[(IncidentStatus, Option<ResolutionReason>, f64)] = match target {
            NewTicket => &[],
            MissingData => &[(MissingData, None, 1.0)],
            InProgress => &[(InProgress, None, 2.0)],
            PreApproved => &[(InProgress, None, 2.0), (PreApproved, None, 72.0)],
            Finalized if self.rng.random_bool(0.2) => &[
                (InProgress, None, 2.0),
                (PreApproved, None, 72.0),
                (
                    Finalized,
                    Some(ResolutionReason::Indemnified),
                    resolve_hours,
                ),
            ],
            Finalized => &[
                (InProgress, None, 2.0),
                (Finalized, Some(ResolutionReason::Resolved), resolve_hours),
            ],
            Declined => &[
                (InProgress, None, 2.0),
                (Declined, Some(ResolutionReason::CarrierRejected), 96.0),
            ],
            Cancelled => &[(Cancelled, None, 3.0)],
        };
        for &(to, reason, hours) in path {
            now = self.later(now, hours);
            let change = StatusChange {
                to,
                reason,
                comment: (to == MissingData).then(|| pick(&mut self.rng, MISSING).to_owned()),
                note: None,
            };
            let moved = t.change_status(change, Role::Agent, now, &self.calendar);
            t = match moved {
                Ok(outcome) => outcome.next,
                Err(e) => panic!("the generator made an illegal change: {e}"),
            };
        }
        t
    }

    fn consultation(&mut self, i: u64) -> Consultation {
        use ConsultationStatus::*;
        let jitter = self.rng.random::<f64>();
        let at = created_at(i, self.n, jitter, self.until);
        let k = self.rng.random_range(0..self.people.drivers.len());
        let (fleet, driver) = self.people.drivers[k].clone();
        let k = self.rng.random_range(0..self.consultation_categories.len());
        let (category, complexity) = self.consultation_categories[k].clone();
        let numbered = complexity.is_some_and(Complexity::creates_ticket);
        let header = self.header(fleet, driver, at, numbered);
        let order_reference = self
            .rng
            .random_bool(0.7)
            .then(|| format!("PED-{:08}", self.rng.random_range(0..100_000_000u32)));
        let new = NewConsultation {
            description: self.consultation_text(&category),
            category,
            order_reference,
            idempotency_key: None,
            contact_email: None,
        };
        let filed = Consultation::file(header, new, &self.catalog, &self.targets, &self.calendar);
        let mut t = match filed {
            Ok(outcome) => outcome.next,
            Err(e) => panic!("the generator filed an invalid consultation: {e}"),
        };
        let age = self.until - at;
        let weights: &[(ConsultationStatus, u32)] = if age < DAY {
            &[(Received, 40), (InProgress, 35), (Solved, 25)]
        } else if age < 3 * DAY {
            &[(Received, 10), (InProgress, 25), (Solved, 65)]
        } else {
            &[(Received, 1), (InProgress, 2), (Solved, 97)]
        };
        let target = weighted(&mut self.rng, weights);
        let mut now = at;
        if target != Received || self.rng.random_bool(0.2) {
            now = self.later(now, 0.2);
            let agent = self.agent();
            t = ticket::assign(&t, Some(agent), None, now).next;
        }
        let path: &[(ConsultationStatus, f64)] = match target {
            Received => &[],
            InProgress => &[(InProgress, 0.3)],
            Solved => &[(InProgress, 0.3), (Solved, 4.0)],
        };
        for &(to, hours) in path {
            now = self.later(now, hours);
            t = match t.change_status(to, None, Role::Agent, now) {
                Ok(outcome) => outcome.next,
                Err(e) => panic!("the generator made an illegal change: {e}"),
            };
        }
        if t.due_at < t.solved_at.unwrap_or(self.until) {
            t.header.breached_at = Some(t.due_at);
        }
        t
    }

    /// A tracking number in `carrier`'s shape.
    fn tracking_number(&mut self, carrier: &str) -> String {
        let digits = |rng: &mut StdRng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect()
        };
        let letters = |rng: &mut StdRng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'A' + rng.random_range(0..26u8)))
                .collect()
        };
        let rng = &mut self.rng;
        match carrier {
            "estafeta" => digits(rng, 22),
            "dhl" => digits(rng, 10),
            "fedex" => digits(rng, 12),
            "redpack" => digits(rng, 9),
            "paquetexpress" => format!(
                "{}{}W{}",
                pick(rng, &["MEX", "GDL", "MTY", "QRO", "PUE", "TIJ"]),
                digits(rng, 2),
                digits(rng, 7)
            ),
            "99minutos" => format!("99M{}", digits(rng, 10)),
            "ups" => format!("1Z{}{}{}", letters(rng, 6), digits(rng, 2), digits(rng, 8)),
            "jtexpress" => format!("JMX{}", digits(rng, 12)),
            "sendex" => format!("SDX-{}", digits(rng, 8)),
            "ampm" => format!("AMPM{}", digits(rng, 8)),
            _ => format!("{}{}", letters(rng, 3), digits(rng, 10)),
        }
    }

    /// A store's account of what went wrong with a shipment of `category`.
    fn incident_text(&mut self, category: &str) -> String {
        let rng = &mut self.rng;
        let mut text = String::with_capacity(200);
        // "cliente" and "favor" each appear in about 60 % of descriptions.
        text.push_str(match rng.random_bool(0.6) {
            true => pick(rng, CLIENT_OPENINGS),
            false => pick(rng, OPENINGS),
        });
        text.push(' ');
        let product = pick(rng, PRODUCTS);
        let n = rng.random_range(2..15);
        let problem = match category {
            "damaged" => format!("{product} llegó {}", pick(rng, DAMAGES)),
            "lost" => format!("la guía sin movimiento desde hace {n} días, {product} nunca llegó"),
            "delayed" => format!("la entrega de {product} lleva {n} días de retraso")
                .replace("de el ", "del "),
            "delivered_not_received" => {
                format!("la guía aparece como entregada pero no recibió {product}")
            }
            "returned_to_sender" => {
                format!("{product} regresó al almacén sin intento de entrega")
            }
            "address_correction" => format!(
                "hay un error en la dirección, el código postal correcto es {:05}",
                rng.random_range(1000..99999)
            ),
            "failed_pickup" => format!("el chofer no pasó a recolectar {n} cajas"),
            "incomplete_content" => {
                format!("llegó la caja abierta, faltan {n} piezas y {product}")
            }
            "overweight" => format!(
                "nos cobraron sobrepeso de {} kg y la caja pesa {n} kg",
                n + rng.random_range(1..20)
            ),
            "extended_zone" => format!(
                "cobraron zona extendida al código postal {:05}",
                rng.random_range(1000..99999)
            ),
            "dimensional_weight" => format!(
                "cobro por peso volumétrico de {} kg, medidas {}x{}x{} cm",
                n * 3,
                rng.random_range(10..120),
                rng.random_range(10..120),
                rng.random_range(10..120)
            ),
            "redelivery" => "cobraron un segundo intento de entrega que no se realizó".into(),
            _ => "hay un cargo por cambio de domicilio que no solicitamos".into(),
        };
        text.push_str(&problem);
        text.push_str(". ");
        if rng.random_bool(0.5) {
            text.push_str(pick(rng, DETAILS));
            text.push_str(". ");
        }
        text.push_str(match rng.random_bool(0.6) {
            true => pick(rng, FAVOR_CLOSINGS),
            false => pick(rng, CLOSINGS),
        });
        text
    }

    /// A driver's chat message about `category`.
    fn consultation_text(&mut self, category: &str) -> String {
        let rng = &mut self.rng;
        let mut text = String::with_capacity(160);
        text.push_str(pick(rng, GREETINGS));
        text.push(' ');
        let situation = match rng.random_bool(0.6) {
            true => pick(rng, CLIENT_SITUATIONS).replace("{}", pick(rng, PRODUCTS)),
            false => pick(rng, ROUTE_SITUATIONS).replace("{}", pick(rng, NEIGHBORHOODS)),
        };
        text.push_str(&situation);
        text.push_str(". ");
        let amount = rng.random_range(50..2500);
        let body = match category {
            "earnings_difference" => {
                format!("En la quincena me pagaron ${amount} menos de lo que marca la app")
            }
            "category_or_service_level" => {
                "Mi nivel de servicio aparece como básico y ya soy nivel oro".into()
            }
            _ => format!("Llevo {} minutos esperando", rng.random_range(5..90)),
        };
        text.push_str(&body);
        text.push_str(". ");
        text.push_str(match rng.random_bool(0.6) {
            true => "¿Me ayudan por favor?",
            false => pick(rng, CLOSINGS),
        });
        text
    }
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut StdRng, weights: &[(T, u32)]) -> T {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut at = rng.random_range(0..total);
    for &(value, w) in weights {
        if at < w {
            return value;
        }
        at -= w;
    }
    weights[weights.len() - 1].0
}

const CARRIER_CODES: &[&str] = &[
    "estafeta",
    "estafeta",
    "estafeta",
    "dhl",
    "dhl",
    "fedex",
    "fedex",
    "redpack",
    "paquetexpress",
    "paquetexpress",
    "99minutos",
    "ups",
    "jtexpress",
    "sendex",
    "ampm",
];

const CLIENT_OPENINGS: &[&str] = &[
    "El cliente reporta que",
    "Nuestro cliente indica que",
    "Mi cliente comenta que",
    "El cliente nos avisó que",
    "Según el cliente,",
];

const OPENINGS: &[&str] = &[
    "Reportamos que",
    "Buen día, les informo que",
    "Hola,",
    "Les escribo porque",
    "Urgente:",
    "Buenas tardes,",
];

const PRODUCTS: &[&str] = &[
    "el refrigerador",
    "la licuadora",
    "el colchón matrimonial",
    "la cámara fotográfica",
    "la máquina de coser",
    "el teléfono celular",
    "el balón de fútbol",
    "la batería de cocina",
    "el horno de microondas",
    "el ventilador de pie",
    "la bocina inalámbrica",
    "el monitor",
    "la pantalla de 55 pulgadas",
    "el sillón reclinable",
    "el escritorio",
    "la consola de videojuegos",
    "el perfume",
    "la chamarra de piel",
    "el reloj",
    "la guitarra eléctrica",
    "el tóner",
    "la cafetera",
    "la bicicleta",
    "el librero",
    "el espejo",
    "la lámpara",
    "el café de grano",
    "la vajilla",
    "el jarrón de cerámica",
    "el acuario",
    "la tableta",
    "el disco duro",
    "la impresora",
    "el módem",
    "la aspiradora",
    "el taladro",
    "la podadora",
    "el comedor",
    "la cuna",
    "la carriola",
    "el rompecabezas",
    "el microscopio",
    "el teclado",
    "la silla ergonómica",
    "el frigobar",
    "la lavadora",
    "la secadora",
    "el calentador",
    "el purificador de agua",
    "la báscula",
    "el termómetro",
    "la botella de mezcal",
    "el vestido de novia",
    "la mochila",
    "el sombrero",
    "la bolsa de mano",
    "el anillo de plata",
    "el collar",
    "la plancha",
    "el sartén",
    "la olla exprés",
    "el refractario",
    "el tapete",
    "la cortina",
    "el edredón",
    "la almohada",
    "el cuadro decorativo",
    "la maceta de barro",
    "el compresor",
    "la llanta",
    "el casco de motocicleta",
    "el acordeón",
    "el violín",
    "el telescopio",
    "el cargador",
    "la memoria USB",
    "el proyector",
    "el regulador de voltaje",
    "el gabinete",
    "la tarjeta de video",
    "el procesador",
    "el suplemento alimenticio",
    "la patineta",
    "el trampolín",
    "la hielera",
    "el asador",
    "el tinaco",
];

const DAMAGES: &[&str] = &[
    "dañado",
    "roto",
    "con golpes",
    "mojado",
    "aplastado",
    "con la caja abierta",
    "estrellado",
    "sin empaque",
];

const DETAILS: &[&str] = &[
    "La caja venía abierta",
    "El empaque estaba mojado",
    "La cinta de seguridad estaba rota",
    "Tenemos fotos de evidencia",
    "El repartidor no quiso esperar",
    "La guía no tiene movimiento en el rastreo",
    "Ya es la segunda vez que pasa",
    "El destinatario rechazó el paquete",
];

const FAVOR_CLOSINGS: &[&str] = &[
    "Por favor revisen.",
    "Favor de dar seguimiento.",
    "Les pido de favor su apoyo.",
    "Quedo atento, por favor confirmen.",
];

const CLOSINGS: &[&str] = &["Gracias.", "Saludos.", "Quedo atento.", "Quedo pendiente."];

const MISSING: &[&str] = &[
    "Falta la foto del paquete",
    "Falta la factura del producto",
    "Necesitamos el peso declarado",
    "Falta la identificación del destinatario",
];

const GREETINGS: &[&str] = &["Hola,", "Buen día,", "Qué tal,", "Buenas,", "Oigan,"];

const CLIENT_SITUATIONS: &[&str] = &[
    "el cliente no contesta el teléfono",
    "el cliente no reconoce la entrega de {}",
    "el cliente pide reprogramar para mañana",
    "el cliente dice que falta {}",
    "el cliente quiere devolver {}",
];

const ROUTE_SITUATIONS: &[&str] = &[
    "no encuentro el domicilio en la colonia {}",
    "la tienda de {} cerró antes de tiempo",
    "la app no me deja cerrar la ruta en {}",
    "me aparece un pedido que no es de mi zona, es de {}",
    "el pedido venía mal armado, lo recogí en {}",
];

const NEIGHBORHOODS: &[&str] = &[
    "Roma Norte",
    "Narvarte",
    "Del Valle",
    "Coyoacán",
    "Santa Fe",
    "Polanco",
    "Iztapalapa",
    "Tlalpan",
    "San Ángel",
    "Condesa",
    "Lindavista",
    "Ciudad Satélite",
    "Mitras Centro",
    "Providencia",
    "Chapultepec",
    "Cumbres",
    "San Pedro Garza García",
    "Juárez",
    "Doctores",
    "Tlaquepaque",
];

const CITIES: &[&str] = &[
    "Ciudad de México",
    "Guadalajara",
    "Monterrey",
    "Puebla",
    "Querétaro",
    "León",
    "Mérida",
    "Tijuana",
    "Toluca",
    "Cancún",
    "San Luis Potosí",
    "Aguascalientes",
];

const STORE_KINDS: &[&str] = &[
    "Abarrotes",
    "Ferretería",
    "Boutique",
    "Electrónica",
    "Papelería",
    "Farmacia",
    "Mueblería",
    "Zapatería",
    "Juguetería",
    "Perfumería",
    "Artesanías",
    "Deportes",
    "Librería",
    "Óptica",
    "Joyería",
    "Regalos",
    "Tienda",
    "Bazar",
    "Distribuidora",
    "Comercializadora",
];

const STORE_NAMES: &[&str] = &[
    "La Esperanza",
    "Doña Lupe",
    "El Martillo",
    "Sofía",
    "Hernández",
    "El Águila",
    "San José",
    "La Güera",
    "Los Pinos",
    "El Sol",
    "Mariana",
    "Pérez e Hijos",
    "La Económica",
    "Del Bajío",
    "Peñafiel",
    "El Buen Precio",
    "Santa Lucía",
    "La Única",
    "Don Chuy",
    "Camila",
    "El Rosario",
    "Montaña Azul",
    "Río Bravo",
    "La Estrella",
    "Ibáñez",
    "Núñez",
    "Valle Verde",
    "El Faro",
    "Tres Hermanos",
    "La Paloma",
    "Orozco",
    "Anáhuac",
    "Xóchitl",
    "El Quetzal",
    "Tonantzin",
    "Del Norte",
    "Marisol",
    "La Tradición",
    "Colibrí",
    "El Nopal",
];

const BRANCHES: &[&str] = &[
    "Sucursal Centro",
    "Sucursal Norte",
    "Sucursal Sur",
    "Plaza Galerías",
    "Online",
];

const FIRST_NAMES: &[&str] = &[
    "Juan",
    "José Luis",
    "Miguel Ángel",
    "Jesús",
    "Alejandro",
    "Francisco",
    "Óscar",
    "Martín",
    "Rocío",
    "Guadalupe",
    "Leticia",
    "Brenda",
    "Efraín",
    "Ramón",
    "Saúl",
    "Abigaíl",
    "Nicolás",
    "Gerardo",
    "Araceli",
    "Elías",
];

const SURNAMES: &[&str] = &[
    "García",
    "Hernández",
    "Martínez",
    "López",
    "González",
    "Pérez",
    "Rodríguez",
    "Sánchez",
    "Ramírez",
    "Cruz",
    "Flores",
    "Gómez",
    "Morales",
    "Vázquez",
    "Reyes",
    "Jiménez",
    "Torres",
    "Díaz",
    "Gutiérrez",
    "Ruiz",
    "Mendoza",
    "Aguilar",
    "Ortiz",
    "Castillo",
    "Núñez",
    "Chávez",
    "Domínguez",
    "Muñoz",
    "Peña",
    "Cortés",
];
