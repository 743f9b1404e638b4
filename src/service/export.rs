//! Export plumbing shared by the ticket types: stream rows out of the database,
//! write them on a blocking thread, stream the file's bytes back in chunks as
//! the zip writer produces them (no temporary copy of the file).
use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::domain::catalog::Catalog;
use crate::domain::principal::Locale;
use crate::domain::{Error, Result};
use crate::report::columns::{Column, Context};
use crate::report::{self, Cell};
use crate::store::tickets::RowStream;

/// Rows handed to the writer at a time.
const BATCH: usize = 1000;
/// The largest data chunk sent to the client.
pub const CHUNK: usize = 64 * 1024;

/// Where rows come from: one snapshot, read in a stable order.
pub trait RowSource: Send + Sync + 'static {
    type Row: Send + Sync + 'static;
    fn rows(&self) -> impl Future<Output = Result<RowStream<'_, Self::Row>>> + Send;
}

/// An export about to run.
pub struct Export<S: RowSource> {
    pub source: S,
    pub columns: Vec<&'static Column<S::Row>>,
    pub catalog: Arc<Catalog>,
    pub locale: Locale,
    pub time_zone: Tz,
    /// When the report was asked for (µs); see `Context::now`.
    pub now: i64,
    /// How long a chunk may wait for the client to take it before the export
    /// is abandoned (and its snapshot released).
    pub stall_timeout: Duration,
}

/// Starts the export and returns the file's chunks as they become ready. The
/// work stops when the receiver is dropped (the client cancelled) or when a
/// chunk waits longer than the stall timeout (the client stopped reading);
/// an export that did not finish ends with its error, never short and clean.
pub fn start<S: RowSource>(export: Export<S>) -> mpsc::Receiver<Result<Vec<u8>>> {
    let (chunks, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = run(export, &chunks).await {
            // Everything the export held is released by now; the error waits
            // behind the chunks already queued, for a client that reads on.
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
        source,
        columns,
        catalog,
        locale,
        time_zone,
        now,
        stall_timeout,
    } = export;
    let headers: Vec<_> = columns.iter().map(|c| c.header(locale)).collect();
    let (rows, rows_rx) = mpsc::channel::<Vec<Vec<Cell>>>(4);
    // Set when reading fails: the writer must then stop, not finish a file
    // that would look whole with rows missing.
    let failed = Arc::new(AtomicBool::new(false));
    let writer = {
        let (chunks, failed) = (chunks.clone(), failed.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let stop = chunks.clone();
            let mut sink = ChunkWriter {
                chunks,
                buffer: Vec::with_capacity(CHUNK),
                runtime,
                stall_timeout,
                stalled: false,
            };
            let written = report::write_xlsx(&mut sink, &headers, rows_rx, || {
                stop.is_closed() || failed.load(Ordering::Acquire)
            })
            .and_then(|_| Ok(sink.flush()?));
            match written {
                Err(_) if sink.stalled => Err(Error::Aborted(format!(
                    "the export was abandoned: the client took no data for {} s; retry",
                    stall_timeout.as_secs_f64()
                ))),
                Err(e) => Err(Error::Internal(anyhow!("cannot write the report: {e}"))),
                Ok(()) => Ok(()),
            }
        })
    };
    // Read rows while the writer works; a closed channel means it stopped
    // (the client cancelled, or writing failed).
    let context = Context {
        catalog: &catalog,
        locale,
        time_zone,
        now,
    };
    let read = async {
        let mut stream = source.rows().await?;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = stream.next().await {
            let row = row?;
            batch.push(columns.iter().map(|c| (c.value)(&row, &context)).collect());
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if rows.send(full).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            let _ = rows.send(batch).await;
        }
        Ok(())
    }
    .await;
    if read.is_err() {
        failed.store(true, Ordering::Release);
    }
    drop(rows);
    let written = writer
        .await
        .map_err(|e| Error::Internal(anyhow!("report writer panicked: {e}")))?;
    read?;
    match written {
        Ok(()) => Ok(()),
        // The client went away: nobody is left to tell.
        Err(_) if chunks.is_closed() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Cuts the workbook's bytes into chunks of [`CHUNK`] and hands them to the
/// stream as they are written (blocking, so the zip writer waits for a slow
/// client instead of buffering the file). A closed stream is a broken pipe; a
/// chunk the client does not take within `stall_timeout` is a timeout.
struct ChunkWriter {
    chunks: mpsc::Sender<Result<Vec<u8>>>,
    buffer: Vec<u8>,
    /// To wait on the channel with a timer from the blocking thread.
    runtime: tokio::runtime::Handle,
    stall_timeout: Duration,
    /// Set when a chunk timed out.
    stalled: bool,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        let sent = self
            .runtime
            .block_on(self.chunks.send_timeout(Ok(full), self.stall_timeout));
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.stalled = true;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped taking the export",
                ))
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "export cancelled by the client",
            )),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}
