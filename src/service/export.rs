//! Export plumbing shared by the ticket types: page rows out of the database,
//! write them on a blocking thread, stream the file back in chunks.
use std::future::Future;
use std::sync::Arc;

use anyhow::anyhow;
use chrono_tz::Tz;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::domain::principal::Locale;
use crate::domain::{Error, Result};
use crate::report::columns::{Column, Context};
use crate::report::{self, Cell};
use crate::store::catalog::Catalog;

/// Rows read from the database per query.
const PAGE: u64 = 1000;
/// The largest data chunk sent to the client.
pub const CHUNK: usize = 64 * 1024;

/// Where rows come from: pages in a stable order, each after the previous one.
pub trait RowSource: Send + 'static {
    type Row: Send + Sync + 'static;
    fn next_page(&mut self, limit: u64) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
}

/// An export about to run.
pub struct Export<S: RowSource> {
    pub source: S,
    pub columns: Vec<&'static Column<S::Row>>,
    pub catalog: Arc<Catalog>,
    pub locale: Locale,
    pub time_zone: Tz,
}

/// Starts the export and returns the file's chunks as they become ready. The
/// work stops when the receiver is dropped (the client cancelled).
pub fn start<S: RowSource>(export: Export<S>) -> mpsc::Receiver<Result<Vec<u8>>> {
    let (chunks, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = run(export, &chunks).await {
            let _ = chunks.send(Err(e)).await;
        }
    });
    receiver
}

async fn run<S: RowSource>(
    export: Export<S>,
    chunks: &mpsc::Sender<Result<Vec<u8>>>,
) -> Result<()> {
    let Export {
        mut source,
        columns,
        catalog,
        locale,
        time_zone,
    } = export;
    let dir = tempfile::tempdir()
        .map_err(|e| Error::Internal(anyhow!("cannot create a temporary directory: {e}")))?;
    let path = dir.path().join("report.xlsx");
    let headers: Vec<_> = columns.iter().map(|c| c.header(locale)).collect();
    let (rows, rows_rx) = mpsc::channel::<Vec<Vec<Cell>>>(4);
    let writer = {
        let (path, temp, chunks) = (path.clone(), dir.path().to_owned(), chunks.clone());
        tokio::task::spawn_blocking(move || {
            report::write_xlsx(&path, &temp, &headers, rows_rx, || chunks.is_closed())
        })
    };
    // Page rows in while the writer works; a closed channel means it stopped.
    let context = Context {
        catalog: &catalog,
        locale,
        time_zone,
    };
    loop {
        let page = source.next_page(PAGE).await?;
        if page.is_empty() || chunks.is_closed() {
            break;
        }
        let batch = page
            .iter()
            .map(|row| columns.iter().map(|c| (c.value)(row, &context)).collect())
            .collect();
        if rows.send(batch).await.is_err() {
            break;
        }
    }
    drop(rows);
    writer
        .await
        .map_err(|e| Error::Internal(anyhow!("report writer panicked: {e}")))?
        .map_err(|e| Error::Internal(anyhow!("cannot write the report: {e}")))?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    loop {
        let mut buffer = vec![0u8; CHUNK];
        let n = read_full(&mut file, &mut buffer)
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        if n == 0 {
            break;
        }
        buffer.truncate(n);
        if chunks.send(Ok(buffer)).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Reads until `buffer` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
