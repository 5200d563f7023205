//! A player's TCP stream as tungstenite reads it, cut at the end of each WebSocket frame.
//!
//! tungstenite reads ahead into a buffer of its own and never gives those bytes back. A player
//! that stops decoding after its first paint hands its socket to the [`counter`](crate::counting)
//! and must hand over the stream from exactly the end of the last message tungstenite returned.
//! So [`Aligned`] never gives tungstenite a byte past the end of the HTTP response or of the
//! frame under way: once tungstenite has returned a message, whatever the server sent after it
//! is still here, and [`Aligned::into_parts`] gives it back with the socket.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Bytes read from the socket at a time.
const BUFFER: usize = 4 * 1024;
/// The blank line that ends an HTTP response's head.
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

/// Where the stream handed to tungstenite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// In the HTTP response's head; `matched` bytes of its closing blank line seen.
    Head { matched: usize },
    /// At the first byte of a frame.
    FrameStart,
    /// Inside a frame, with this many of its bytes left.
    InFrame(u64),
}

/// The length of a frame, header included, when `bytes` start with its whole header.
pub fn frame_length(bytes: &[u8]) -> io::Result<Option<u64>> {
    let mut cursor = Cursor::new(bytes);
    match FrameHeader::parse(&mut cursor) {
        Ok(Some((_, payload))) => Ok(Some(cursor.position() + payload)),
        Ok(None) => Ok(None),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// A TCP stream that hands its reader at most one frame's remaining bytes per read.
#[derive(Debug)]
pub struct Aligned {
    stream: TcpStream,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    at: Position,
}

impl Aligned {
    /// Wraps a stream whose next bytes are an HTTP response, then WebSocket frames.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            at: Position::Head { matched: 0 },
        }
    }

    /// The reader has taken every byte up to a frame's end: what is left starts a frame.
    pub fn at_frame_start(&self) -> bool {
        self.at == Position::FrameStart
    }

    /// The socket, and the bytes read from it that the reader has not taken (see
    /// [`Aligned::at_frame_start`]).
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let rest = self.buffer[self.start..self.end].to_vec();
        (self.stream, rest)
    }

    /// Reads more from the socket after the unread bytes; `Ok(false)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a frame header longer than the read buffer",
            )));
        }
        let mut read = ReadBuf::new(&mut self.buffer[self.end..]);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        Poll::Ready(Ok(n > 0))
    }
}

impl AsyncRead for Aligned {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start == this.end && !ready!(this.poll_fill(cx))? {
                return Poll::Ready(Ok(()));
            }
            let unread = &this.buffer[this.start..this.end];
            let room = unread.len().min(out.remaining());
            let take = match this.at {
                Position::Head { mut matched } => {
                    let mut take = room;
                    for (i, &byte) in unread[..room].iter().enumerate() {
                        matched = if byte == HEAD_END[matched] {
                            matched + 1
                        } else {
                            usize::from(byte == b'\r')
                        };
                        if matched == HEAD_END.len() {
                            take = i + 1;
                            break;
                        }
                    }
                    this.at = if matched == HEAD_END.len() {
                        Position::FrameStart
                    } else {
                        Position::Head { matched }
                    };
                    take
                }
                Position::FrameStart => {
                    if let Some(length) = frame_length(unread)? {
                        this.at = Position::InFrame(length);
                    } else if !ready!(this.poll_fill(cx))? {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                    continue;
                }
                Position::InFrame(left) => {
                    let take = room.min(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - take as u64;
                    this.at = if left == 0 {
                        Position::FrameStart
                    } else {
                        Position::InFrame(left)
                    };
                    take
                }
            };
            out.put_slice(&unread[..take]);
            this.start += take;
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for Aligned {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bytes)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        Frame::message(payload.to_vec(), OpCode::Data(Data::Binary), true)
            .format(&mut bytes)
            .expect("format");
        bytes
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.expect("connect"), server.expect("accept").0)
    }

    /// Reads from stream offset `base` with a reader's buffer of `chunk` bytes until `n` bytes
    /// came, each read checked not to cross a boundary in `ends`.
    async fn read_checked(
        aligned: &mut Aligned,
        base: usize,
        n: usize,
        chunk: usize,
        ends: &[usize],
    ) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < n {
            let mut buf = vec![0; chunk.min(n - got.len())];
            let k = aligned.read(&mut buf).await.expect("read");
            assert!(k > 0, "ended early");
            let (from, to) = (base + got.len(), base + got.len() + k);
            assert!(
                !ends.iter().any(|&e| from < e && e < to),
                "a read of {from}..{to} crossed a boundary in {ends:?}"
            );
            got.extend_from_slice(&buf[..k]);
        }
        got
    }

    #[tokio::test]
    async fn reads_stop_at_the_response_head_and_at_each_frame_end() {
        let (client, server) = pair().await;
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        let frames = [
            frame(b"one"),
            frame(&[7; 300]),
            frame(&[9; 70_000]),
            frame(b""),
        ];
        let mut all = head.clone();
        let mut ends = vec![head.len()];
        for f in &frames {
            all.extend_from_slice(f);
            ends.push(all.len());
        }
        // Everything in one write, from another task (it is more than a socket buffer holds).
        let writing = {
            let all = all.clone();
            tokio::spawn(async move {
                let mut server = server;
                server.write_all(&all).await.map(|()| server)
            })
        };
        let mut aligned = Aligned::new(client);
        let got = read_checked(&mut aligned, 0, head.len() + frames[0].len(), 4096, &ends).await;
        assert_eq!(got, all[..got.len()]);
        assert!(aligned.at_frame_start());
        let got = read_checked(&mut aligned, ends[1], frames[1].len() + 10, 97, &ends).await;
        let offset = ends[1];
        assert_eq!(got, all[offset..offset + got.len()]);
        assert!(!aligned.at_frame_start(), "ten bytes into the third frame");
        let rest = read_checked(
            &mut aligned,
            ends[2] + 10,
            all.len() - ends[2] - 10,
            8192,
            &ends,
        )
        .await;
        assert_eq!(rest, all[ends[2] + 10..]);
        assert!(aligned.at_frame_start());
        writing.await.expect("writer").expect("write");
    }

    #[tokio::test]
    async fn the_unread_bytes_after_a_frame_come_back_with_the_socket() {
        let (client, mut server) = pair().await;
        let mut all = b"HTTP/1.1 101 OK\r\n\r\n".to_vec();
        let head = all.len();
        all.extend(frame(b"first"));
        let first_end = all.len();
        all.extend(frame(b"second"));
        all.extend(frame(b"third"));
        server.write_all(&all).await.expect("write");
        // Wait until the client's socket holds all of it, so the wrapper reads ahead.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut aligned = Aligned::new(client);
        let got = read_checked(&mut aligned, 0, first_end, 4096, &[head, first_end]).await;
        assert_eq!(got.len(), first_end);
        assert!(aligned.at_frame_start());
        let (_, rest) = aligned.into_parts();
        assert_eq!(rest, all[first_end..]);
    }

    #[tokio::test]
    async fn a_header_split_across_reads_is_waited_for() {
        let (client, mut server) = pair().await;
        let second = frame(&[1; 1000]);
        let length = second.len();
        let mut aligned = Aligned::new(client);
        server
            .write_all(b"HTTP/1.1 101 OK\r\n\r")
            .await
            .expect("write");
        let reader = tokio::spawn(async move {
            let got = read_checked(&mut aligned, 0, 19 + length, 4096, &[19]).await;
            (got, aligned.at_frame_start())
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        server.write_all(b"\n").await.expect("write");
        server.write_all(&second[..1]).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        server.write_all(&second[1..]).await.expect("write");
        let (got, at_start) = reader.await.expect("reader");
        assert_eq!(&got[19..], &second[..]);
        assert!(at_start);
    }

    #[test]
    fn frame_lengths_include_the_header() {
        assert_eq!(frame_length(&frame(b"abc")).expect("ok"), Some(5));
        assert_eq!(frame_length(&frame(&[0; 200])).expect("ok"), Some(204));
        assert_eq!(
            frame_length(&frame(&[0; 70_000])).expect("ok"),
            Some(70_010)
        );
        assert_eq!(frame_length(&[0x82]).expect("ok"), None);
    }
}
