//! Players that only count: after its first paint, an unchecked player hands its socket to the
//! [`Counter`], one thread that reads every such socket in turn once per sweep (`--count-every`,
//! 250 ms by default) and counts the messages and bytes that came, without decoding them.
//!
//! Why: a player that reads each frame as it arrives costs loadgen a wake-up, a task poll and a
//! `recv` per frame, about what the server spends sending it, so with thousands of players on one
//! machine loadgen, not the server, was the limit. Read in sweeps, a socket's frames of a quarter
//! second come in one `recv`, and sockets the counter holds are in no `epoll` set, so no
//! thread is woken when a frame lands. The server does the same work either way: one `send`
//! per frame into a socket buffer that is never full. (On loopback it no longer wakes the
//! reader's `epoll` in its own `send`, a cost a server on a real network never pays.)
//!
//! The counter answers pings with pongs, so the server keeps the socket, and reports a close
//! frame, the end of the stream or an error to the player, which can reconnect. The player still
//! pans (its subscribe frames go out through [`Counted::send`]) and closes the socket at the end.

use std::io::{self, Cursor, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::metrics::add;
use crate::run::Shared;

/// Bytes read per `recv`; a socket holding more is read again in the same sweep.
const READ_CHUNK: usize = 64 * 1024;
/// How long a write waits for room in a socket's send buffer before giving up.
const WRITE_PATIENCE: Duration = Duration::from_secs(2);

/// The counter's door: players hand it their sockets. Its thread stops once the run's
/// [`Shared`] is gone.
#[derive(Debug)]
pub struct Counter {
    joining: mpsc::Sender<Entry>,
}

impl Counter {
    /// A counter sweeping every `every`, and the receiving end its thread takes (see
    /// [`Counter::start`]).
    pub fn new(every: Duration) -> (Self, Joining) {
        let (joining, receiver) = mpsc::channel();
        (Self { joining }, Joining { receiver, every })
    }

    /// Starts the thread, which counts into `shared`'s metrics until `shared` is dropped.
    pub fn start(shared: &Arc<Shared>, joining: Joining) -> io::Result<()> {
        let weak = Arc::downgrade(shared);
        std::thread::Builder::new()
            .name("loadgen-counter".into())
            .spawn(move || sweep_forever(&weak, &joining.receiver, joining.every))
            .map(drop)
    }

    /// Takes a socket whose next bytes start a frame (`unread`: bytes already read from it).
    pub fn count(&self, stream: TcpStream, unread: Vec<u8>) -> io::Result<Arc<Counted>> {
        stream.set_nonblocking(true)?;
        let counted = Arc::new(Counted {
            stream,
            writing: parking_lot::Mutex::new(()),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            ended: OnceLock::new(),
            notify: tokio::sync::Notify::new(),
        });
        let entry = Entry {
            counted: counted.clone(),
            scanner: Scanner::default(),
            unread,
        };
        self.joining
            .send(entry)
            .map_err(|_| io::Error::other("the counter has stopped"))?;
        Ok(counted)
    }
}

/// The receiving end of a [`Counter`]'s door, for its thread.
#[derive(Debug)]
pub struct Joining {
    receiver: mpsc::Receiver<Entry>,
    every: Duration,
}

/// A socket the counter reads: what it counted, and how it ended.
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    /// Held for each whole frame written, so a pong and a subscribe never interleave.
    writing: parking_lot::Mutex<()>,
    messages: AtomicU64,
    bytes: AtomicU64,
    ended: OnceLock<String>,
    notify: tokio::sync::Notify,
}

impl Counted {
    /// Data messages received since the counter took the socket.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Their payload bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Resolves with how the connection ended (as `closed 4000`, `connection lost`, ...).
    pub async fn ended(&self) -> String {
        loop {
            if let Some(how) = self.ended.get() {
                return how.clone();
            }
            self.notify.notified().await;
        }
    }

    /// Sends one data message (masked, as a client must).
    pub fn send(&self, payload: Vec<u8>, binary: bool) -> io::Result<()> {
        let data = if binary { Data::Binary } else { Data::Text };
        self.write_frame(OpCode::Data(data), payload)
    }

    /// Sends a close frame (1000) and stops writing.
    pub fn close(&self) {
        let _ = self.write_frame(
            OpCode::Control(Control::Close),
            1000u16.to_be_bytes().into(),
        );
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    fn write_frame(&self, opcode: OpCode, payload: Vec<u8>) -> io::Result<()> {
        let header = FrameHeader {
            opcode,
            mask: Some(rand::random()),
            ..FrameHeader::default()
        };
        let mut bytes = Vec::with_capacity(payload.len() + 14);
        Frame::from_payload(header, payload.into())
            .format(&mut bytes)
            .map_err(io::Error::other)?;
        let _writing = self.writing.lock();
        let deadline = Instant::now() + WRITE_PATIENCE;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match (&self.stream).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    // The server reads what players send at once: this is rare and short.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn add(&self, totals: Totals) {
        self.messages.fetch_add(totals.messages, Ordering::Relaxed);
        self.bytes.fetch_add(totals.bytes, Ordering::Relaxed);
    }

    fn end(&self, how: String) {
        let _ = self.ended.set(how);
        self.notify.notify_one();
    }
}

/// What one read counted.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    messages: u64,
    bytes: u64,
}

/// Where a socket's stream stands between reads.
#[derive(Debug, Default)]
struct Scanner {
    /// The start of a frame whose header (or, for a control frame, whole frame) is not all here.
    carry: Vec<u8>,
    /// Payload bytes of a data frame still to come, skipped unread.
    skip: u64,
}

/// What the scanner found that the socket must act on.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Ping(Vec<u8>),
    Closed(Option<u16>),
    Broken(String),
}

impl Scanner {
    /// Counts the frames in `bytes`, which continue the stream, and returns what needs an
    /// answer; a close frame or broken framing ends the scan.
    fn scan(&mut self, bytes: &[u8], totals: &mut Totals) -> Vec<Event> {
        if self.carry.is_empty() {
            return self.scan_contiguous(bytes, totals);
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(bytes);
        self.scan_contiguous(&joined, totals)
    }

    fn scan_contiguous(&mut self, mut bytes: &[u8], totals: &mut Totals) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
            }
            if bytes.is_empty() {
                return events;
            }
            let mut cursor = Cursor::new(bytes);
            let (header, length) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    self.carry = bytes.to_vec();
                    return events;
                }
                Err(e) => {
                    events.push(Event::Broken(format!("error: {e}")));
                    return events;
                }
            };
            let header_length = cursor.position() as usize;
            match header.opcode {
                OpCode::Data(_) => {
                    if header.is_final {
                        totals.messages += 1;
                    }
                    totals.bytes += length;
                    self.skip = length;
                    bytes = &bytes[header_length..];
                }
                OpCode::Control(control) => {
                    let end = header_length + length as usize;
                    if bytes.len() < end {
                        self.carry = bytes.to_vec();
                        return events;
                    }
                    let payload = &bytes[header_length..end];
                    match control {
                        Control::Ping => events.push(Event::Ping(payload.to_vec())),
                        Control::Close => {
                            let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                            events.push(Event::Closed(code));
                            return events;
                        }
                        _ => {}
                    }
                    bytes = &bytes[end..];
                }
            }
        }
    }
}

/// A socket in the counter's hands.
#[derive(Debug)]
struct Entry {
    counted: Arc<Counted>,
    scanner: Scanner,
    /// Bytes read from the socket before the hand-over, counted at the first sweep (with the
    /// run's totals, like everything after them).
    unread: Vec<u8>,
}

impl Entry {
    /// Counts `bytes` and acts on what they hold; `false` once the connection ended.
    fn scan(&mut self, bytes: &[u8], totals: &mut Totals) -> bool {
        let events = self.scanner.scan(bytes, totals);
        for event in events {
            match event {
                Event::Ping(payload) => {
                    if let Err(e) = self
                        .counted
                        .write_frame(OpCode::Control(Control::Pong), payload)
                    {
                        self.counted.end(format!("send failed: {e}"));
                        return false;
                    }
                }
                Event::Closed(code) => {
                    self.counted.end(match code {
                        Some(code) => format!("closed {code}"),
                        None => "closed".into(),
                    });
                    return false;
                }
                Event::Broken(how) => {
                    self.counted.end(how);
                    return false;
                }
            }
        }
        true
    }

    /// Reads everything the socket holds; `false` once the connection ended or the player left.
    fn sweep(&mut self, buffer: &mut [u8], totals: &mut Totals) -> bool {
        if Arc::strong_count(&self.counted) == 1 {
            return false;
        }
        let mut mine = Totals::default();
        let unread = std::mem::take(&mut self.unread);
        let alive = self.scan(&unread, &mut mine)
            && loop {
                match (&self.counted.stream).read(buffer) {
                    Ok(0) => {
                        self.counted.end("connection lost".into());
                        break false;
                    }
                    Ok(n) => {
                        if !self.scan(&buffer[..n], &mut mine) {
                            break false;
                        }
                        if n < buffer.len() {
                            break true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.counted.end(format!("error: {e}"));
                        break false;
                    }
                }
            };
        self.counted.add(mine);
        totals.messages += mine.messages;
        totals.bytes += mine.bytes;
        alive
    }
}

fn sweep_forever(shared: &Weak<Shared>, joining: &mpsc::Receiver<Entry>, every: Duration) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut buffer = vec![0; READ_CHUNK];
    loop {
        let started = Instant::now();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        entries.extend(joining.try_iter());
        let mut totals = Totals::default();
        entries.retain_mut(|entry| entry.sweep(&mut buffer, &mut totals));
        let counters = &shared.metrics.counters;
        add(&counters.messages, totals.messages);
        add(&counters.bytes, totals.bytes);
        drop(shared);
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let mut bytes = Vec::new();
        Frame::from_payload(header, payload.to_vec().into())
            .format(&mut bytes)
            .expect("format");
        bytes
    }

    fn data(payload: &[u8]) -> Vec<u8> {
        frame(OpCode::Data(Data::Binary), payload)
    }

    /// Scans `stream` cut at every point in `cuts`, returning the totals and events.
    fn scan_in_pieces(stream: &[u8], cuts: &[usize]) -> (Totals, Vec<Event>) {
        let mut scanner = Scanner::default();
        let mut totals = Totals::default();
        let mut events = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([stream.len()].iter()) {
            events.extend(scanner.scan(&stream[from..to], &mut totals));
            from = to;
        }
        (totals, events)
    }

    #[test]
    fn counts_messages_and_payload_bytes_however_the_stream_is_cut() {
        let mut stream = Vec::new();
        stream.extend(data(b"hello"));
        stream.extend(frame(OpCode::Control(Control::Ping), b"p1"));
        stream.extend(data(&[3; 300]));
        stream.extend(data(&[4; 70_000]));
        stream.extend(data(b""));
        for cuts in [
            vec![],
            vec![1],
            vec![3, 4, 5, 6, 7, 8, 9],
            vec![8, 12, 200, 400, 70_000],
            (1..stream.len()).step_by(7).collect(),
        ] {
            let (totals, events) = scan_in_pieces(&stream, &cuts);
            assert_eq!(totals.messages, 4, "cuts {cuts:?}");
            assert_eq!(totals.bytes, 5 + 300 + 70_000, "cuts {cuts:?}");
            assert_eq!(events, vec![Event::Ping(b"p1".to_vec())], "cuts {cuts:?}");
        }
    }

    #[test]
    fn a_close_frame_ends_the_scan_with_its_code() {
        let mut stream = data(b"x");
        stream.extend(frame(
            OpCode::Control(Control::Close),
            &4000u16.to_be_bytes(),
        ));
        stream.extend(data(b"after the close"));
        let (totals, events) = scan_in_pieces(&stream, &[5]);
        assert_eq!(totals.messages, 1);
        assert_eq!(events, vec![Event::Closed(Some(4000))]);
    }

    /// Reads one frame a client sent, unmasking it: its opcode and payload.
    fn read_client_frame(server: &mut TcpStream) -> (OpCode, Vec<u8>) {
        let mut bytes = Vec::new();
        let mut chunk = [0; 256];
        loop {
            let mut cursor = Cursor::new(&bytes[..]);
            if let Some((header, length)) = FrameHeader::parse(&mut cursor).expect("a frame") {
                let start = cursor.position() as usize;
                if bytes.len() >= start + length as usize {
                    let mask = header.mask.expect("a client masks its frames");
                    let payload = bytes[start..start + length as usize]
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[i % 4])
                        .collect();
                    return (header.opcode, payload);
                }
            }
            let n = server.read(&mut chunk).expect("read");
            assert!(n > 0, "the client closed");
            bytes.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn a_counted_socket_answers_pings_sends_and_reports_the_close() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        let (counter, joining) = Counter::new(Duration::from_millis(250));
        // The bytes read before the hand-over: one whole message and half of the next.
        let half = data(&[5; 40]);
        let mut unread = data(b"before");
        unread.extend_from_slice(&half[..20]);
        let counted = counter.count(client, unread).expect("counted");
        let mut entry = joining.receiver.try_recv().expect("handed to the counter");
        assert_eq!(
            (counted.messages(), counted.bytes()),
            (0, 0),
            "counted at the first sweep, with the run's totals"
        );

        let mut sent = half[20..].to_vec();
        sent.extend(frame(OpCode::Control(Control::Ping), b"are you there"));
        sent.extend(data(&[6; 3000]));
        server.write_all(&sent).expect("write");
        std::thread::sleep(Duration::from_millis(50));
        let mut buffer = vec![0; 1024];
        let mut totals = Totals::default();
        assert!(entry.sweep(&mut buffer, &mut totals));
        // Two messages from before the hand-over (the second finished after it), then one.
        assert_eq!((totals.messages, totals.bytes), (3, 3046));
        assert_eq!((counted.messages(), counted.bytes()), (3, 3046));
        assert_eq!(
            read_client_frame(&mut server),
            (OpCode::Control(Control::Pong), b"are you there".to_vec())
        );

        counted.send(b"{}".to_vec(), false).expect("send");
        assert_eq!(
            read_client_frame(&mut server),
            (OpCode::Data(Data::Text), b"{}".to_vec())
        );

        server
            .write_all(&frame(
                OpCode::Control(Control::Close),
                &4000u16.to_be_bytes(),
            ))
            .expect("write");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !entry.sweep(&mut buffer, &mut totals),
            "the connection ended"
        );
        assert_eq!(counted.ended().await, "closed 4000");
    }

    #[test]
    fn garbage_breaks_the_connection() {
        // Reserved opcode 3.
        let (_, events) = scan_in_pieces(&[0x83, 0x00], &[]);
        assert!(
            matches!(events.as_slice(), [Event::Broken(_)]),
            "{events:?}"
        );
    }
}
