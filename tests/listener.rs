//! The HTTP listener against clients that connect and then send nothing, or half a request:
//! the real binary as a child process (with its own, small open-file limit), plain TCP sockets
//! from this test, short configured timeouts.
//!
//! Its own test binary: one test here opens thousands of sockets, which would starve the tests
//! of another binary of file descriptors.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service on `port` with `vars`, its open-file limit set to `nofile`.
fn start_service(port: u16, dir: &std::path::Path, nofile: u64, vars: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voice-agent"));
    cmd.arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("listener.db").display()),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("service starts")
}

/// `GET /health` on a new connection, as raw HTTP/1.1; the status line, or why there was none.
async fn health(port: u16, within: Duration) -> Result<String, String> {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 512];
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        Ok(text.lines().next().unwrap_or("").to_string())
    };
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {within:?}")))
}

async fn wait_healthy(port: u16) {
    for _ in 0..150 {
        if health(port, Duration::from_secs(1))
            .await
            .is_ok_and(|l| l.contains(" 200 "))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service did not become healthy");
}

/// Waits for the peer to close `s` (EOF or reset) within `within`; `false` if it stayed open.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit; returns the new soft limit.
fn raise_own_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// More idle connections than the service has file descriptors (the 20,000, bounded to
/// what this test's own limit allows): the service keeps accepting, and `/health` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_fd_limit_leave_health_answering() {
    const SERVICE_NOFILE: u64 = 1024;
    let own = raise_own_nofile();
    // The 20,000, within this process's own limit (keeping room for its own use):
    // many times what the service has descriptors for.
    let idle_target = 20_000.min(own.saturating_sub(256) as usize);
    assert!(
        idle_target > SERVICE_NOFILE as usize,
        "this test needs more than {SERVICE_NOFILE} descriptors; has {own}"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The header timeout is long: the idle connections must not simply time out during the test.
    let mut child = start_service(
        port,
        dir.path(),
        SERVICE_NOFILE,
        &[("HTTP_HEADER_TIMEOUT_MS", "600000")],
    );
    wait_healthy(port).await;

    let mut idle = Vec::with_capacity(idle_target);
    let mut refused = 0usize;
    let opening = Instant::now();
    for _ in 0..idle_target {
        // A service that stops accepting would make each connect wait: bounded.
        if opening.elapsed() > Duration::from_secs(60) {
            break;
        }
        match tokio::time::timeout(
            Duration::from_millis(500),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(Ok(s)) => idle.push(s),
            _ => refused += 1,
        }
    }
    assert!(
        idle.len() > SERVICE_NOFILE as usize,
        "opened {} idle connections ({refused} refused)",
        idle.len()
    );

    // Several in a row: each one admitted while every slot is taken by an idle connection.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let line = health(port, Duration::from_secs(5)).await;
        worst = worst.max(started.elapsed());
        assert!(
            line.as_deref().is_ok_and(|l| l.contains(" 200 ")),
            "/health with {} idle connections open: {line:?}",
            idle.len()
        );
    }
    eprintln!(
        "{} idle connections open: /health answered, worst {worst:?}",
        idle.len()
    );
    assert!(
        worst < Duration::from_millis(100),
        "/health took {worst:?} with {} idle connections open",
        idle.len()
    );
    drop(idle);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A connection that sends nothing, and one that stops half-way through its headers, are both
/// closed once the header timeout has passed.
#[tokio::test]
async fn idle_and_half_sent_headers_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start_service(port, dir.path(), 1024, &[("HTTP_HEADER_TIMEOUT_MS", "300")]);
    wait_healthy(port).await;
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = (
        closed_by_peer(&mut silent, Duration::from_secs(3)).await,
        closed_by_peer(&mut half, Duration::from_secs(3)).await,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        closed,
        (true, true),
        "(silent, half-sent headers) closed by the service"
    );
}

/// SIGTERM while one client holds half-sent headers and another a request whose body stopped
/// half-way: the service exits within its drain deadline instead of waiting for them.
#[tokio::test]
async fn sigterm_with_half_sent_requests_open_exits_within_the_drain_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Long header and request timeouts, so only the drain deadline can end these connections.
    let mut child = start_service(
        port,
        dir.path(),
        1024,
        &[
            ("HTTP_HEADER_TIMEOUT_MS", "600000"),
            ("HTTP_REQUEST_TIMEOUT_MS", "600000"),
            ("SHUTDOWN_DRAIN_MS", "1000"),
        ],
    );
    wait_healthy(port).await;
    let mut headers = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    headers
        .write_all(b"POST /campaigns HTTP/1.1\r\nHost: t\r\nContent-")
        .await
        .unwrap();
    let mut body = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    body.write_all(
        b"POST /campaigns HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Instant::now();
    // SAFETY: sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let mut exited = None;
    while sent.elapsed() < Duration::from_secs(8) {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some((status, sent.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some((status, after)) = exited else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("still running 8 s after SIGTERM with half-sent requests open");
    };
    eprintln!("exited {status} {after:?} after SIGTERM");
    assert!(status.success(), "a clean exit: {status}");
    // The 1 s drain, plus the background tasks' stop.
    assert!(after < Duration::from_secs(5), "exited after {after:?}");
    drop((headers, body));
}
