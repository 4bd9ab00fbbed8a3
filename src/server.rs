//! The HTTP listener: accepts connections for the router, and is the one place that bounds
//! what a client can hold.
//!
//! - **Header timeout** (`HTTP_HEADER_TIMEOUT_MS`, hyper's `header_read_timeout`): a connection
//!   must deliver a request's complete headers that long after it opened or after its previous
//!   response, else it is closed. Idle keep-alive connections and slow-header clients
//!   ("slowloris") therefore cannot keep a descriptor for ever. A body that stops arriving is
//!   bounded by the request timeout (`startup::router`).
//! - **Connection cap** (`HTTP_MAX_CONNECTIONS`, and never more than a quarter of the process's
//!   open-file limit, so database and provider sockets always find descriptors): every accepted
//!   socket holds a slot until it is closed, WebSockets included (the slot travels inside the
//!   socket, through hyper's upgrade). At the cap, the oldest connection with no request in
//!   flight is closed to admit the new one, so a flood of idle connections cannot lock out
//!   `/health` or a real client; when every connection is busy, the new one is refused.
//! - **Accept errors** (`EMFILE` and the like) never stop the loop: an idle connection is closed
//!   and accepting resumes after a short pause.
//! - **Shutdown**: accepting stops, idle connections close, in-flight requests get
//!   `SHUTDOWN_DRAIN_MS`; whatever is still open then (a client holding a half-sent request) is
//!   dropped, so shutdown always completes.
//!
//! HTTP/1.1 only: the carrier, the dashboard and API clients all speak it, and HTTP/2's
//! streams would need limits of their own.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// The connection cap in force: the configured one, within a quarter of the open-file limit.
pub fn connection_cap(settings: &HttpSettings) -> usize {
    let by_files = open_file_limit().map_or(usize::MAX, |n| (n / 4) as usize);
    settings.max_connections.min(by_files).max(16)
}

/// The process's soft `RLIMIT_NOFILE`, when it can be read.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Raises the soft open-file limit to the hard one (the default soft limit, often 1,024, is far
/// below what a few thousand live calls need). Called once by `voice-agent serve`.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Requests whose response (body included) is not finished.
    in_flight: AtomicUsize,
    /// Cancelled to close the connection at once (eviction).
    close: CancellationToken,
}

/// Every open connection, oldest first (ids only grow).
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    // A std mutex: held for a map operation, never across an await.
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Closes the oldest connection with no request in flight; `false` when all are busy.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let idle = open
            .iter()
            .find(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0 && !c.close.is_cancelled())
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// A socket that holds its connection slot until it is dropped (after an upgrade too).
struct Counted {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Counts a request as in flight until its response body is finished or dropped.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: &Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(conn.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router as one connection's hyper service.
#[derive(Clone)]
struct ConnService {
    router: Router,
    conn: Arc<Conn>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.conn);
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request.map(Body::new)).await?;
            // The guard lives as long as the body: a streamed export is still in flight.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &in_flight;
                    frame
                }))
            }))
        })
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let cap = connection_cap(settings);
    tracing::info!(
        connections = cap,
        header_timeout_ms = settings.header_timeout.as_millis() as u64,
        "listener limits"
    );
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    let dropping = CancellationToken::new();
    // hyper's own HTTP/1 builder: hyper-util's `auto` builder first waits for bytes to tell
    // HTTP/1 from HTTP/2, with no timer, so a silent connection would never time out.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    let mut last_warning: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if is_out_of_files(&e) {
                        registry.evict_idle();
                        warn_now_and_then(&mut last_warning, &e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            },
        };
        let Some(slot) = take_slot(&slots, &registry).await else {
            warn_now_and_then(
                &mut last_warning,
                &io::Error::other("every connection is busy: refused one"),
            );
            continue;
        };
        let (id, conn) = registry.add();
        let service = ConnService {
            router: app.clone(),
            conn: conn.clone(),
        };
        let builder = builder.clone();
        let (registry, draining, dropping) = (registry.clone(), draining.clone(), dropping.clone());
        connections.spawn(async move {
            let io = TokioIo::new(Counted {
                stream,
                _slot: slot,
            });
            let served = builder.serve_connection(io, service).with_upgrades();
            let mut served = std::pin::pin!(served);
            tokio::select! {
                _ = served.as_mut() => {}
                _ = conn.close.cancelled() => {}
                _ = draining.cancelled() => {
                    served.as_mut().graceful_shutdown();
                    tokio::select! {
                        _ = served.as_mut() => {}
                        _ = dropping.cancelled() => {}
                        _ = conn.close.cancelled() => {}
                    }
                }
            }
            registry.remove(id);
        });
    }
    drop(listener);
    draining.cancel();
    connections.close();
    if tokio::time::timeout(settings.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain deadline: dropping them"
        );
        dropping.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// A connection slot: a free one, or one freed by closing the oldest idle connection.
async fn take_slot(slots: &Arc<Semaphore>, registry: &Registry) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !registry.evict_idle() {
        return None;
    }
    // The evicted connection's task drops its socket (and slot) as soon as it is polled.
    tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// At most one warning every five seconds: a flood must not become a flood of log lines.
fn warn_now_and_then(last: &mut Option<Instant>, e: &io::Error) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
        *last = Some(Instant::now());
        tracing::warn!(error = %e, "listener under pressure");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_takes_the_oldest_idle_connection_and_spares_busy_ones() {
        let registry = Registry::default();
        let (_, busy) = registry.add();
        let (_, first_idle) = registry.add();
        let (_, second_idle) = registry.add();
        let _request = InFlight::start(&busy);
        assert!(registry.evict_idle());
        assert!(!busy.close.is_cancelled());
        assert!(first_idle.close.is_cancelled());
        assert!(!second_idle.close.is_cancelled());
        assert!(registry.evict_idle());
        assert!(second_idle.close.is_cancelled());
        assert!(!registry.evict_idle(), "only a busy connection is left");
    }

    #[test]
    fn the_cap_stays_within_a_quarter_of_the_file_limit() {
        let settings = HttpSettings {
            max_connections: 1_000_000,
            ..HttpSettings::default()
        };
        let files = open_file_limit().unwrap();
        assert!(connection_cap(&settings) as u64 <= (files / 4).max(16));
    }
}
