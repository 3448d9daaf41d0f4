//! Watches as a `futures::Stream`: every change of a resource kind after a
//! revision, in commit order, with no gaps, resumed on another member when
//! the stream breaks.
//!
//! Resuming: the server streams changes with revision > `from_revision`.
//! One Raft entry may change several resources, which then share its
//! revision, so after a break the stream resumes from the revision *before*
//! the last one seen and skips the events of that last revision it already
//! delivered (the server sends an entry's events in a fixed order).

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use futures::Stream;
use tonic::Streaming;

use crate::config::{RESPONSE_BYTES_MAX, WATCH_RESUMES_MAX};
use crate::error::{classify, Error, Verdict};
use crate::transport::{Client, Retry, Routing};

/// Where a watch stands.
struct Cursor {
    client: Client,
    kind: pb::ResourceKind,
    /// The last revision delivered (or the starting one).
    revision: u64,
    /// Events of `revision` already delivered.
    delivered_at_revision: usize,
    /// Events of `revision` to drop after a resume.
    skip: usize,
    stream: Option<Streaming<pb::WatchEvent>>,
    /// Resumes since the last delivered event.
    resumes: usize,
    done: bool,
}

impl Client {
    /// Every change of `kind` (`ResourceKind::Unspecified`: every kind) with
    /// a revision above `from_revision`, in commit order, then new changes as
    /// they commit, until the stream is dropped. Usually `from_revision` is
    /// the `revision` of a list response. When the serving member fails, the
    /// stream resumes on another one without gaps or repeats; it ends with
    /// [`Error::Compacted`] when the history it needs is gone (re-list), or
    /// [`Error::Unavailable`] when no member serves it.
    ///
    /// ```no_run
    /// # async fn example(client: alcor_client::Client) -> Result<(), alcor_client::Error> {
    /// use alcor_client::types::{ListPortsRequest, ResourceKind};
    /// use futures::StreamExt;
    ///
    /// let page = client.ports().list(ListPortsRequest::default()).await?;
    /// let mut changes = Box::pin(client.watch(ResourceKind::Port, page.revision));
    /// while let Some(event) = changes.next().await {
    ///     let event = event?;
    ///     println!("revision {}: {:?} {}", event.revision, event.r#type(), event.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(
        &self,
        kind: pb::ResourceKind,
        from_revision: u64,
    ) -> impl Stream<Item = Result<pb::WatchEvent, Error>> + Send + 'static {
        let cursor = Cursor {
            client: self.streaming(),
            kind,
            revision: from_revision,
            delivered_at_revision: 0,
            skip: 0,
            stream: None,
            resumes: 0,
            done: false,
        };
        futures::stream::unfold(cursor, |mut cursor| async move {
            let item = cursor.next().await?;
            Some((item, cursor))
        })
    }
}

impl Cursor {
    /// The next item, or `None` once the stream ended with an error.
    async fn next(&mut self) -> Option<Result<pb::WatchEvent, Error>> {
        if self.done {
            return None;
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                if let Err(e) = self.open().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(event)) => {
                    if event.revision == self.revision && self.skip > 0 {
                        self.skip -= 1;
                        continue;
                    }
                    self.skip = 0;
                    if event.revision == self.revision {
                        self.delivered_at_revision += 1;
                    } else {
                        self.revision = event.revision;
                        self.delivered_at_revision = 1;
                    }
                    self.resumes = 0;
                    return Some(Ok(event));
                }
                // The member ended the stream (it is stopping): resume.
                Ok(None) => self.stream = None,
                Err(status) => match classify(&status) {
                    Verdict::Final(error) => {
                        self.done = true;
                        return Some(Err(error));
                    }
                    Verdict::NotApplied { .. } | Verdict::MaybeApplied { .. } => {
                        self.stream = None;
                    }
                },
            }
        }
    }

    /// Opens (or reopens) the stream on some member, from the cursor.
    async fn open(&mut self) -> Result<(), Error> {
        if self.resumes >= WATCH_RESUMES_MAX {
            return Err(Error::Unavailable {
                message: format!("watch broke {WATCH_RESUMES_MAX} times without progress"),
            });
        }
        self.resumes += 1;
        // Resume before the last revision and skip what of it was delivered.
        let (from_revision, skip) = if self.delivered_at_revision > 0 {
            (self.revision.saturating_sub(1), self.delivered_at_revision)
        } else {
            (self.revision, 0)
        };
        let request = pb::WatchRequest {
            kind: self.kind.into(),
            from_revision: Some(from_revision),
        };
        let stream = self
            .client
            .call(
                Retry::Read,
                Routing::Any,
                request,
                |channel, request| async move {
                    OrchestratorClient::new(channel)
                        .max_decoding_message_size(RESPONSE_BYTES_MAX)
                        .watch(request)
                        .await
                },
            )
            .await?;
        self.stream = Some(stream);
        self.skip = skip;
        Ok(())
    }
}
