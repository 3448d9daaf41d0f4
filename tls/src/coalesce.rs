//! Write coalescing for the gRPC listeners: [`CoalescedIo`] gathers what a
//! connection writes and sends it in one write after the other ready tasks
//! of the runtime have had their turn.
//!
//! Why: a unary gRPC answer reaches hyper's HTTP/2 connection task as its own
//! frames, from its own task, and h2 flushes on every poll of the connection
//! (a DATA frame above 256 bytes is not even copied into h2's buffer, so
//! nothing can follow it until it is written). When a Raft entry answers a
//! hundred coalesced writes at once, a connection therefore wrote each answer,
//! and then the trailers, with a syscall of its own (`benches/README.md`,
//! "write coalescing on the gRPC listeners"). Here a write only copies into a
//! buffer, and the first flush of a non-empty buffer yields once (the task
//! wakes itself, so the runtime polls it again after the tasks already
//! queued, the answers that became ready together) before the buffer goes
//! out in one write. Under TLS the wrapper sits outside the TLS stream, so
//! the gathered plaintext also becomes one record instead of one per frame.
//!
//! Written by hand: `tokio::io::BufWriter` buffers but writes at once on
//! flush, and holds its whole capacity for as long as the connection lives;
//! here the buffer is allocated when a write comes and released once it is
//! out, so an idle connection (an agent's push stream) holds none.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::COALESCED_WRITE_BYTES_MAX;

/// A connection whose writes are gathered and sent once per flush, after
/// one yield (see the module docs). Reads pass straight through.
#[derive(Debug)]
pub struct CoalescedIo<IO> {
    inner: IO,
    /// Bytes accepted but not yet written; never more than
    /// [`COALESCED_WRITE_BYTES_MAX`].
    pending: Vec<u8>,
    /// How much of `pending` the inner connection already took.
    written: usize,
    /// Whether this flush already yielded once.
    yielded: bool,
}

impl<IO> CoalescedIo<IO> {
    /// Wraps a connection.
    pub fn new(inner: IO) -> CoalescedIo<IO> {
        CoalescedIo {
            inner,
            pending: Vec::new(),
            written: 0,
            yielded: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }
}

impl<IO: AsyncWrite + Unpin> CoalescedIo<IO> {
    /// Writes out everything pending, then releases the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: writes out what is pending when
    /// they would not fit beside it.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.pending.len() + len > COALESCED_WRITE_BYTES_MAX {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for CoalescedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CoalescedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_room(cx, buf.len()))?;
        if buf.len() >= COALESCED_WRITE_BYTES_MAX {
            // Nothing is pending now; a write this large goes out as it is.
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len = bufs.iter().map(|b| b.len()).sum::<usize>();
        ready!(this.poll_room(cx, len))?;
        if len >= COALESCED_WRITE_BYTES_MAX {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            this.pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            this.yielded = false;
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if !this.yielded {
            // Polled again after the tasks already queued: their frames
            // join this write.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for CoalescedIo<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connection that records each write it is given, taking at most
    /// `chunk` bytes of each (a fake, for these unit tests only).
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        chunk: Option<usize>,
        shut: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.chunk.map_or(buf.len(), |c| c.min(buf.len()));
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(i: u8, len: usize) -> Vec<u8> {
        vec![i; len]
    }

    #[test]
    fn frames_written_before_a_flush_go_out_in_one_write_after_one_yield() {
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedIo::new(Recorder::default());
        let mut sent = Vec::new();
        for i in 0..10u8 {
            // DATA frames of a unary answer are ~280 bytes.
            let bytes = frame(i, 283);
            let slices = [io::IoSlice::new(&bytes[..9]), io::IoSlice::new(&bytes[9..])];
            let n = Pin::new(&mut io).poll_write_vectored(&mut cx, &slices);
            assert!(matches!(n, Poll::Ready(Ok(283))));
            sent.extend_from_slice(&bytes);
        }
        assert!(
            io.get_ref().writes.is_empty(),
            "nothing is written before a flush"
        );
        assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the yield wakes the task"
        );
        assert!(
            io.get_ref().writes.is_empty(),
            "the first flush only yields"
        );
        // A frame queued while the task yielded joins the same write.
        let late = frame(99, 10);
        assert!(Pin::new(&mut io).poll_write(&mut cx, &late).is_ready());
        sent.extend_from_slice(&late);
        assert!(matches!(
            Pin::new(&mut io).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.get_ref().writes, vec![sent]);
        assert_eq!(io.pending.capacity(), 0, "the buffer is released once out");
        // Nothing pending: a flush passes straight through, without a yield.
        assert!(matches!(
            Pin::new(&mut io).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn bytes_beyond_the_buffer_and_partial_writes_arrive_whole_and_in_order() {
        let waker = std::task::Waker::from(Arc::new(Wakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = CoalescedIo::new(Recorder {
            chunk: Some(7_777),
            ..Recorder::default()
        });
        let mut sent = Vec::new();
        let sizes = [
            100,
            COALESCED_WRITE_BYTES_MAX - 50,
            COALESCED_WRITE_BYTES_MAX + 1,
            3,
        ];
        for (i, len) in sizes.into_iter().enumerate() {
            let bytes = frame(i as u8, len);
            let mut off = 0;
            while off < bytes.len() {
                match Pin::new(&mut io).poll_write(&mut cx, &bytes[off..]) {
                    Poll::Ready(Ok(n)) => off += n,
                    other => panic!("write: {other:?}"),
                }
            }
            sent.extend_from_slice(&bytes);
            assert!(io.pending.len() <= COALESCED_WRITE_BYTES_MAX);
        }
        assert!(matches!(
            Pin::new(&mut io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(io.get_ref().shut);
        assert_eq!(io.get_ref().writes.concat(), sent);
    }

    #[tokio::test]
    async fn a_loopback_peer_reads_every_byte_and_the_answers_come_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut io = CoalescedIo::new(tcp);
            let mut request = [0u8; 4];
            io.read_exact(&mut request).await.unwrap();
            for i in 0..50u8 {
                io.write_all(&frame(i, 300)).await.unwrap();
            }
            io.flush().await.unwrap();
            io.shutdown().await.unwrap();
            request
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let want: Vec<u8> = (0..50u8).flat_map(|i| frame(i, 300)).collect();
        assert_eq!(got, want);
        assert_eq!(&server.await.unwrap(), b"ping");
    }
}
