//! The plain-TCP writer: bytes that lie in the arena (`arena.rs`) go to the socket by
//! `sendfile` from the arena's file, everything else by `writev`. hyper and h2 hand a response
//! body to the connection as the cache's own `Bytes` (hyper queues a body buffer rather than
//! copying it when the transport writes vectors), so a memory hit over plain HTTP reaches the
//! kernel as a file range, and the bytes are not copied by this process at all.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use prometheus_client::metrics::counter::Counter;
use rustix::net::SendFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::arena;

/// A TCP stream that sends arena bytes from the arena's file.
#[derive(Debug)]
pub struct Sendfile {
    stream: TcpStream,
    /// Bytes sent by `sendfile`.
    sent: Counter,
}

impl Sendfile {
    /// Writes to `stream`, counting what goes by `sendfile` in `sent`.
    pub fn new(stream: TcpStream, sent: Counter) -> Self {
        Self { stream, sent }
    }

    /// One non-blocking call of `io`, once the socket is writable.
    fn poll_io(&self, cx: &mut Context<'_>, mut io: impl FnMut() -> io::Result<usize>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_io(Interest::WRITABLE, &mut io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncRead for Sendfile {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sendfile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Sends the leading run of heap slices, or else the leading arena slice: one system call,
    /// and the caller comes back for the rest, as with any short write.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = &bufs[bufs.iter().take_while(|b| b.is_empty()).count()..];
        let Some(first) = bufs.first() else { return Poll::Ready(Ok(0)) };
        if let Some((file, offset)) = arena::locate(first) {
            let len = first.len();
            let sent = ready!(self.poll_io(cx, || {
                let mut at = offset;
                Ok(rustix::fs::sendfile(&self.stream, file, Some(&mut at), len)?)
            }))?;
            self.sent.inc_by(sent as u64);
            return Poll::Ready(Ok(sent));
        }
        let heap = bufs.iter().take_while(|b| arena::locate(b).is_none()).count();
        if heap == 1 && bufs.len() > 1 {
            // A response head before its body: held for the body's first packet.
            let head: &[u8] = first;
            return self.poll_io(cx, || Ok(rustix::net::send(&self.stream, head, SendFlags::MORE | SendFlags::NOSIGNAL)?));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[..heap])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
