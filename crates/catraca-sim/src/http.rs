//! A minimal HTTP/1.1 server on `std::net`, written for the simulator's needs.
//!
//! A simulated turnstile must misbehave the way a real one does on a bad day: reset a
//! connection (linger 0, then close: the peer reads RST), stall without answering, or
//! send a broken body. Off-the-shelf servers hide the socket, so this one is ours: a
//! thread per connection, keep-alive, `Content-Length` bodies only (chunked uploads get
//! 411, as lighttpd 1.4 answers), per-connection buffers reused across requests so
//! that a small request costs no allocation in the transport. What to answer is the
//! [`Handler`]'s business; this file only moves bytes and closes sockets. With a
//! rustls configuration, every connection speaks TLS (handshake on the first read).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Bodies beyond this are refused with 413; the vendor advises staying under 2 MB.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Request line plus headers; real clients send a few hundred bytes.
const MAX_HEAD: u64 = 64 * 1024;
/// How long `stop` waits for connection threads after closing their sockets; they
/// only ever block on a socket or on the stop signal, so this is a safety net.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One parsed request, borrowing the connection's buffers.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path without the query string, still percent-encoded.
    pub(crate) path: &'a str,
    query: &'a str,
    pub(crate) body: &'a [u8],
    /// The `Authorization` header, for Digest devices.
    pub(crate) authorization: Option<&'a str>,
    /// The `Content-Type` header (a multipart upload's boundary is in it).
    pub(crate) content_type: Option<&'a str>,
}

impl Request<'_> {
    /// The request target as sent (path and query, still encoded): what a Digest
    /// `uri` must repeat.
    pub(crate) fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.to_owned()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// Whether some query key, decoded, contains `part` (`UserIDList[` for a filter).
    pub(crate) fn has_query_key_containing(&self, part: &str) -> bool {
        self.query.split('&').any(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            percent_decode(key).contains(part)
        })
    }

    /// The first value of a query parameter, percent-decoded with `+` read as a space
    /// (form encoding, as the device's CGI layer reads it).
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 2;
                }
                // A stray `%` stays literal, as lenient servers keep it.
                _ => decoded.push(b'%'),
            },
            other => decoded.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An answer to write.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// `WWW-Authenticate` challenges to send with a 401, one header each, in order.
    pub(crate) challenges: Vec<String>,
}

impl Response {
    pub(crate) fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body,
            challenges: Vec::new(),
        }
    }

    pub(crate) fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
            challenges: Vec::new(),
        }
    }
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Reply {
    Answer(Response),
    /// Abort the connection: the client reads "connection reset by peer".
    Reset,
    /// Close the connection without answering (after a hang, say).
    Close,
}

/// Decides every answer; shared by all connection threads of one server.
pub(crate) trait Handler: Send + Sync + 'static {
    /// False while the device is "down": new connections are reset at once and open
    /// ones are closed after their current request.
    fn accepting(&self) -> bool;
    fn handle(&self, request: &Request<'_>) -> Reply;
    /// Seconds the device's clock is ahead of this machine's (negative: behind), shown
    /// in the `Date` header of every answer. Default: none.
    fn clock_offset_s(&self) -> i64 {
        0
    }
}

/// Raised once when a server stops; anything that waits (a simulated latency, a hang)
/// waits on it so that stopping never waits out a sleep.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    lock: Mutex<()>,
    raised: Condvar,
}

impl StopSignal {
    pub(crate) fn is_raised(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn raise(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.stopped.store(true, Ordering::Release);
        self.raised.notify_all();
    }

    /// Sleeps for `duration` or until the signal is raised; true if it was raised.
    /// A duration too long to add to the clock means "until raised".
    pub(crate) fn sleep(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return self.is_raised();
        }
        let deadline = Instant::now().checked_add(duration);
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_raised() {
            guard = match deadline {
                None => self.raised.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.raised
                        .wait_timeout(guard, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }
}

/// Open connections, so that `stop` can close sockets blocked in a read.
#[derive(Debug, Default)]
struct Connections {
    open: Mutex<HashMap<u64, TcpStream>>,
    all_closed: Condvar,
    /// The id of the next connection: also how many have been accepted so far.
    next_id: AtomicU64,
}

/// A running server; `stop` (or drop) closes the listener and every connection.
#[derive(Debug)]
pub(crate) struct Server {
    local_addr: SocketAddr,
    stop: Arc<StopSignal>,
    connections: Arc<Connections>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start<H: Handler>(
        addr: SocketAddr,
        handler: Arc<H>,
        stop: Arc<StopSignal>,
        thread_name: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let connections = Arc::new(Connections::default());
        let acceptor = {
            let (stop, connections) = (stop.clone(), connections.clone());
            let name = thread_name.to_owned();
            thread::Builder::new()
                .name(format!("{thread_name}-accept"))
                .spawn(move || accept_loop(&listener, &handler, &stop, &connections, &name, tls))?
        };
        Ok(Server {
            local_addr,
            stop,
            connections,
            acceptor: Some(acceptor),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections accepted so far, not counting those reset at once because the device
    /// was down.
    pub(crate) fn connections_accepted(&self) -> u64 {
        self.connections.next_id.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection and waits for their threads.
    pub(crate) fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stop.raise();
        // `accept` only returns on a connection: make one. On failure the acceptor
        // is left to exit whenever a connection comes, rather than blocking here.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = acceptor.join();
        }
        let open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let _ = self
            .connections
            .all_closed
            .wait_timeout_while(open, STOP_GRACE, |open| !open.is_empty());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the peer read RST instead of FIN: linger zero, then close.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn accept_loop<H: Handler>(
    listener: &TcpListener,
    handler: &Arc<H>,
    stop: &Arc<StopSignal>,
    connections: &Arc<Connections>,
    thread_name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    for stream in listener.incoming() {
        if stop.is_raised() {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            // Out of descriptors or an aborted handshake: the next accept may work;
            // a short pause keeps a persistent error from spinning a core.
            Err(_) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        if !handler.accepting() {
            reset(stream);
            continue;
        }
        let id = connections.next_id.fetch_add(1, Ordering::Relaxed);
        let Ok(registered) = stream.try_clone() else {
            continue;
        };
        connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, registered);
        let registration = Registration {
            connections: connections.clone(),
            id,
        };
        let handler = handler.clone();
        let tls = tls.clone();
        // If the thread cannot start, the closure is dropped with the registration in
        // it, which unregisters the connection.
        let _ = thread::Builder::new()
            .name(format!("{thread_name}-conn"))
            .spawn(move || {
                let _ = stream.set_nodelay(true);
                let ending = match tls {
                    None => serve_connection(&stream, &*handler),
                    Some(config) => serve_tls(config, &stream, &*handler),
                };
                // Unregister first: a reset only happens when the last descriptor of
                // the socket closes, and the registry holds one.
                drop(registration);
                match ending {
                    Ending::Reset => reset(stream),
                    Ending::Close => drop(stream),
                }
            });
    }
}

/// A connection's place in the registry, given up on drop, so that a connection
/// thread that panics does not leave `stop` waiting for it.
struct Registration {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
        if open.is_empty() {
            self.connections.all_closed.notify_all();
        }
    }
}

enum Ending {
    Close,
    Reset,
}

/// What the head of a request said about the connection and the body.
struct Head {
    content_length: usize,
    authorization: Option<String>,
    content_type: Option<String>,
    keep_alive: bool,
    chunked: bool,
}

enum ReadOutcome {
    Request(Head),
    /// The peer closed (or the socket was shut down) between requests.
    Closed,
    /// Unparseable or oversized: answer this status and close.
    Refuse(u16),
}

/// Serves requests over TLS on one connection; a clean close sends `close_notify`.
fn serve_tls(
    config: Arc<rustls::ServerConfig>,
    stream: &TcpStream,
    handler: &impl Handler,
) -> Ending {
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return Ending::Close;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let ending = serve_connection(&mut tls, handler);
    if matches!(ending, Ending::Close) {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    ending
}

/// Serves requests on one connection until either side closes it.
fn serve_connection<S: Read + Write>(stream: S, handler: &impl Handler) -> Ending {
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let mut request_line = Vec::with_capacity(256);
    let mut header_line = Vec::with_capacity(256);
    let mut body = Vec::new();
    let mut out = Vec::with_capacity(4 * 1024);
    loop {
        let head = match read_head(&mut reader, &mut request_line, &mut header_line) {
            Ok(ReadOutcome::Request(head)) => head,
            Ok(ReadOutcome::Closed) | Err(_) => return Ending::Close,
            Ok(ReadOutcome::Refuse(status)) => {
                let _ = write_response(
                    reader.get_mut(),
                    &mut out,
                    &error_response(status),
                    false,
                    handler.clock_offset_s(),
                );
                return Ending::Close;
            }
        };
        if head.chunked {
            let _ = write_response(
                reader.get_mut(),
                &mut out,
                &error_response(411),
                false,
                handler.clock_offset_s(),
            );
            return Ending::Close;
        }
        if head.content_length > MAX_BODY {
            let _ = write_response(
                reader.get_mut(),
                &mut out,
                &error_response(413),
                false,
                handler.clock_offset_s(),
            );
            return Ending::Close;
        }
        // Read into the buffer's spare capacity rather than zeroing it first (the
        // zeroing was 1.5% of the simulator's instructions in W2); a body cut short
        // closes the connection, as `read_exact` did.
        body.clear();
        body.reserve(head.content_length);
        let wanted = head.content_length as u64;
        match reader.by_ref().take(wanted).read_to_end(&mut body) {
            Ok(read) if read == head.content_length => {}
            _ => return Ending::Close,
        }
        let Some((method, target)) = parse_request_line(&request_line) else {
            let _ = write_response(
                reader.get_mut(),
                &mut out,
                &error_response(400),
                false,
                handler.clock_offset_s(),
            );
            return Ending::Close;
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = Request {
            method,
            path,
            query,
            body: &body,
            authorization: head.authorization.as_deref(),
            content_type: head.content_type.as_deref(),
        };
        match handler.handle(&request) {
            Reply::Answer(response) => {
                let keep_alive = head.keep_alive && handler.accepting();
                if write_response(
                    reader.get_mut(),
                    &mut out,
                    &response,
                    keep_alive,
                    handler.clock_offset_s(),
                )
                .is_err()
                    || !keep_alive
                {
                    return Ending::Close;
                }
            }
            Reply::Reset => return Ending::Reset,
            Reply::Close => return Ending::Close,
        }
    }
}

fn read_head<S: Read>(
    reader: &mut BufReader<S>,
    request_line: &mut Vec<u8>,
    header_line: &mut Vec<u8>,
) -> io::Result<ReadOutcome> {
    let mut limited = reader.take(MAX_HEAD);
    // Tolerate blank lines before a request line, as RFC 9112 asks.
    loop {
        // A request starts with a method. Bytes that cannot start one (a TLS ClientHello
        // sent to this plain-HTTP port starts with 0x16) are refused at once, as HTTP
        // servers do, instead of waiting for a line end the client may never send.
        if limited
            .fill_buf()?
            .first()
            .is_some_and(|&b| !may_begin_a_request(b))
        {
            return Ok(ReadOutcome::Refuse(400));
        }
        request_line.clear();
        if limited.read_until(b'\n', request_line)? == 0 {
            return Ok(ReadOutcome::Closed);
        }
        if !trim_line(request_line).is_empty() {
            break;
        }
    }
    if !request_line.ends_with(b"\n") {
        return Ok(ReadOutcome::Refuse(431));
    }
    let http_10 = trim_line(request_line).ends_with(b"HTTP/1.0");
    let mut head = Head {
        content_length: 0,
        authorization: None,
        content_type: None,
        keep_alive: !http_10,
        chunked: false,
    };
    loop {
        header_line.clear();
        if limited.read_until(b'\n', header_line)? == 0 || !header_line.ends_with(b"\n") {
            return Ok(if limited.limit() == 0 {
                ReadOutcome::Refuse(431)
            } else {
                ReadOutcome::Closed
            });
        }
        let line = trim_line(header_line);
        if line.is_empty() {
            return Ok(ReadOutcome::Request(head));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Ok(ReadOutcome::Refuse(400));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            match parsed {
                Some(length) => head.content_length = length,
                None => return Ok(ReadOutcome::Refuse(400)),
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                head.keep_alive = false;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                head.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"authorization") {
            head.authorization = Some(String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case(b"content-type") {
            head.content_type = Some(String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.chunked = !value.eq_ignore_ascii_case(b"identity");
        }
        // `Expect: 100-continue` is ignored on purpose: the device never sends 100,
        // and a client that waits for it must time out and send the body anyway.
    }
}

/// A method's first character, or the line end of a blank line before a request.
fn may_begin_a_request(byte: u8) -> bool {
    byte.is_ascii_graphic() || byte == b'\r' || byte == b'\n'
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `METHOD target HTTP/1.x` -> (method, target).
fn parse_request_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(trim_line(line)).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.") && target.starts_with('/'))
        .then_some((method, target))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        403 => "Forbidden",
        501 => "Not Implemented",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The page lighttpd sends when it, not the application, refuses a request.
pub(crate) fn error_response(status: u16) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>{status} {reason}</title></head>\
         <body><h1>{status} {reason}</h1></body></html>\n",
        reason = reason(status)
    );
    Response {
        status,
        content_type: "text/html",
        body: body.into_bytes(),
        challenges: Vec::new(),
    }
}

/// Writes head and body with one `write_all`, so a small answer is one segment.
fn write_response(
    stream: &mut impl Write,
    out: &mut Vec<u8>,
    response: &Response,
    keep_alive: bool,
    clock_offset_s: i64,
) -> io::Result<()> {
    out.clear();
    write!(
        out,
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}",
        response.status,
        reason(response.status),
        // RFC 9110 6.6.1: a server with a clock sends Date on every answer, and the
        // device's lighttpd does; `catraca check` reads the device's clock from it.
        (chrono::Utc::now() + chrono::Duration::seconds(clock_offset_s))
            .format("%a, %d %b %Y %H:%M:%S GMT"),
        response.content_type,
        response.body.len(),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    )?;
    for challenge in &response.challenges {
        write!(out, "WWW-Authenticate: {challenge}\r\n")?;
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response.body);
    stream.write_all(out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the body, or panics when asked to.
    struct Echo;

    impl Handler for Echo {
        fn accepting(&self) -> bool {
            true
        }

        fn handle(&self, request: &Request<'_>) -> Reply {
            assert_ne!(request.path, "/panic", "a handler bug");
            Reply::Answer(Response::json(200, request.body.to_vec()))
        }
    }

    fn echo_server() -> Server {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Server::start(addr, Arc::new(Echo), Arc::default(), "echo", None).unwrap()
    }

    /// Sends raw bytes and reads until the server closes the connection.
    fn exchange(server: &Server, raw: &str) -> String {
        let mut stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn one_connection_serves_requests_until_connection_close() {
        let server = echo_server();
        let answer = exchange(
            &server,
            "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi\
             POST /b HTTP/1.1\r\ncontent-length: 3\r\nConnection: close\r\n\r\nyou",
        );
        assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
        assert!(answer.ends_with("Connection: close\r\n\r\nyou"), "{answer}");
    }

    #[test]
    fn a_body_cut_short_closes_the_connection_unanswered() {
        let server = echo_server();
        let mut stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf")
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert_eq!(answer, "", "nothing is answered to half a body");
        // A whole one after an empty one, on one connection, is read exactly.
        let answer = exchange(
            &server,
            "POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
             POST /b HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nwhole",
        );
        assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
        assert!(answer.ends_with("\r\n\r\nwhole"), "{answer}");
    }

    #[test]
    fn chunked_bodies_get_411() {
        let server = echo_server();
        let answer = exchange(
            &server,
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 411 "), "{answer}");
    }

    #[test]
    fn a_tls_client_hello_on_the_plain_port_gets_400_at_once() {
        let server = echo_server();
        let mut stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The start of a ClientHello record, without a line end: no line ever comes.
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0xf4, 0x01])
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    }

    #[test]
    fn a_panicking_handler_closes_its_connection_and_never_hangs_stop() {
        let mut server = echo_server();
        let answer = exchange(&server, "POST /panic HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(answer, "");
        let stopping = Instant::now();
        server.stop();
        assert!(stopping.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn query_values_are_percent_decoded_and_plus_is_a_space() {
        let request = Request {
            method: "POST",
            path: "/x",
            query: "a=1&session=q%2FAc%2Bx+y&bad=%zz%4",
            body: b"",
            authorization: None,
            content_type: None,
        };
        assert_eq!(request.query_param("session").as_deref(), Some("q/Ac+x y"));
        assert_eq!(request.query_param("bad").as_deref(), Some("%zz%4"));
        assert_eq!(request.query_param("missing"), None);
    }

    #[test]
    fn request_lines_are_parsed_strictly() {
        assert_eq!(
            parse_request_line(b"POST /login.fcgi?x=1 HTTP/1.1\r\n"),
            Some(("POST", "/login.fcgi?x=1"))
        );
        assert_eq!(parse_request_line(b"POST /login.fcgi\r\n"), None);
        assert_eq!(parse_request_line(b"GET http://x/ HTTP/1.1\r\n"), None);
    }
}
