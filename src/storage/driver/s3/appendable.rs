//! Objects written in pieces (uploads in progress) on a store that cannot
//! append. Full chunks go to an S3 multipart upload on the object's own key;
//! what is left over (less than a chunk, as small PATCHes leave) and the list
//! of parts are kept in a small state object at that same key, replaced
//! atomically on every commit. So the state lives in the bucket, not in one
//! process: after a restart, or on another node, the next writer reads it
//! and continues. Memory per upload stays below two chunks.
//!
//! Only what a commit recorded counts: parts uploaded after it (a request
//! cut short) are simply left out when the upload completes. The state also
//! keeps the commit before the last one, so an unacknowledged append can
//! be undone ([`super::S3Driver`]'s `truncate`), and an opaque checkpoint the
//! layer above stores with each commit (its running hash: parts cannot be
//! read back before the upload completes).

use super::S3Driver;
use super::client::{error, other};
use crate::storage::driver::{DriverError, DriverFuture, FileWriter};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Where an object's parts are uploaded: beside the state object, not at its
/// key, since Garage drops a key's unfinished multipart upload when a newer
/// object is written there (each commit rewrites the state object).
pub fn parts_of(path: &str) -> String {
    format!("{path}{PARTS_SUFFIX}")
}

pub const PARTS_SUFFIX: &str = ".parts";

/// Object metadata marking a state object, and its logical size.
pub const MARK: &str = "pr-appendable";
pub const SIZE: &str = "pr-size";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Part {
    pub number: i32,
    pub etag: String,
    pub size: u64,
}

/// One commit: parts, then the leftover bytes (`tail`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Commit {
    pub parts: Vec<Part>,
    #[serde(skip)]
    pub tail: Bytes,
    pub tail_len: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl Commit {
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.tail.len() as u64
    }

    pub fn checkpoint(&self) -> Option<Bytes> {
        let b64 = self.checkpoint.as_ref()?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .map(Bytes::from)
    }
}

/// The state object: a JSON line, then the tails of `current` and `previous`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    pub current: Commit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Commit>,
}

impl State {
    pub fn encode(&self) -> Bytes {
        let mut head = self.clone();
        head.current.tail_len = self.current.tail.len() as u64;
        if let Some(p) = &mut head.previous {
            p.tail_len = p.tail.len() as u64;
        }
        let mut out = serde_json::to_vec(&head).expect("state serialises");
        out.push(b'\n');
        out.extend_from_slice(&self.current.tail);
        if let Some(p) = &self.previous {
            out.extend_from_slice(&p.tail);
        }
        Bytes::from(out)
    }

    pub fn decode(bytes: &Bytes) -> Option<State> {
        let nl = bytes.iter().position(|&b| b == b'\n')?;
        let mut s: State = serde_json::from_slice(&bytes[..nl]).ok()?;
        let mut at = nl + 1;
        let mut take = |len: u64| {
            let end = at.checked_add(usize::try_from(len).ok()?)?;
            let b = bytes.get(at..end)?;
            at = end;
            Some(bytes.slice_ref(b))
        };
        s.current.tail = take(s.current.tail_len)?;
        if let Some(p) = &mut s.previous {
            p.tail = take(p.tail_len)?;
        }
        Some(s)
    }
}

/// What is stored at a key that is being appended to.
pub enum Found {
    Absent,
    /// A state object.
    State(State),
    /// A plain object: its bytes count as a tail if it is small.
    Plain,
}

impl S3Driver {
    /// Reads what `path` holds for appending.
    pub(super) async fn load(&self, path: &str) -> Result<Found, DriverError> {
        let key = self.key(path);
        let got = self
            .client
            .get_object()
            .bucket(&*self.bucket)
            .key(&key)
            .send();
        let out = match got.await {
            Ok(o) => o,
            Err(e) => {
                return match error("GetObject", path, e) {
                    DriverError::NotFound(_) => Ok(Found::Absent),
                    e => Err(e),
                };
            }
        };
        let marked = out.metadata().is_some_and(|m| m.contains_key(MARK));
        let size = out.content_length().unwrap_or(0) as u64;
        if !marked && size > self.chunk_size {
            return Ok(Found::Plain);
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| other(path, format!("GetObject: {e}")))?
            .into_bytes();
        if !marked {
            let mut s = State::default();
            s.current.tail = body;
            return Ok(Found::State(s));
        }
        State::decode(&body)
            .map(Found::State)
            .ok_or_else(|| other(path, "unreadable upload state"))
    }

    /// The state of an object being appended to (a plain small object, as a
    /// new upload's empty data is, counts as its tail).
    pub(super) async fn state(&self, path: &str) -> Result<State, DriverError> {
        match self.load(path).await? {
            Found::Absent => Err(DriverError::NotFound(path.to_string())),
            Found::State(s) => Ok(s),
            Found::Plain => Err(other(path, "complete object: cannot append to it")),
        }
    }

    pub(super) async fn save(&self, path: &str, state: &State) -> Result<(), DriverError> {
        let key = self.key(path);
        let size = state.current.size().to_string();
        self.client
            .put_object()
            .bucket(&*self.bucket)
            .key(&key)
            .metadata(MARK, "1")
            .metadata(SIZE, size)
            .body(ByteStream::from(state.encode()))
            .send()
            .await
            .map_err(|e| error("PutObject", path, e))?;
        Ok(())
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<Part, DriverError> {
        let size = body.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&*self.bucket)
            .key(self.key(path))
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| error("UploadPart", path, e))?;
        let etag = out
            .e_tag()
            .ok_or_else(|| other(path, "UploadPart: no ETag"))?;
        Ok(Part {
            number,
            etag: etag.to_string(),
            size,
        })
    }

    pub(super) async fn create_upload(&self, path: &str) -> Result<String, DriverError> {
        let o = self.write_options();
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(self.key(path))
            .set_storage_class(o.class)
            .set_server_side_encryption(o.sse)
            .set_ssekms_key_id(o.kms_key);
        let out = req
            .send()
            .await
            .map_err(|e| error("CreateMultipartUpload", path, e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| other(path, "CreateMultipartUpload: no upload id"))
    }

    /// Completes the parts of an object being appended to into one object
    /// at [`parts_of`] its path, the tail as the last part. Returns the size.
    /// Completed already (a retry after a crash), the object is there.
    pub(super) async fn seal(&self, path: &str, state: State) -> Result<u64, DriverError> {
        let mut c = state.current;
        let size = c.size();
        let parts_path = parts_of(path);
        let Some(upload_id) = state.upload_id else {
            return Err(other(path, "no parts to complete"));
        };
        if !c.tail.is_empty() {
            let number = c.parts.len() as i32 + 1;
            let part = self.upload_part(&parts_path, &upload_id, number, c.tail.clone());
            match part.await {
                Ok(part) => c.parts.push(part),
                Err(DriverError::NotFound(_)) => return self.sealed(path, size).await,
                Err(e) => return Err(e),
            }
        }
        let parts = c
            .parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(self.key(&parts_path))
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match done.map_err(|e| error("CompleteMultipartUpload", path, e)) {
            Ok(_) => Ok(size),
            Err(DriverError::NotFound(_)) => self.sealed(path, size).await,
            Err(e) => Err(e),
        }
    }

    /// The upload is gone: completed by an attempt that died before moving
    /// the result, whose object must then be there, whole.
    async fn sealed(&self, path: &str, size: u64) -> Result<u64, DriverError> {
        let (info, _) = self.head(&parts_of(path)).await?;
        if info.size == size {
            Ok(size)
        } else {
            Err(other(
                path,
                "upload gone and its completed object incomplete",
            ))
        }
    }

    /// Undoes the last commit if it took the object past `len`.
    pub(super) async fn cut_back(&self, path: &str, len: u64) -> Result<(), DriverError> {
        let mut s = self.state(path).await?;
        if s.current.size() == len {
            return Ok(());
        }
        match s.previous.take() {
            Some(p) if p.size() == len => {
                s.current = p;
                self.save(path, &s).await
            }
            _ => Err(other(
                path,
                format!("cannot cut back to {len} bytes: only the last append can be undone here"),
            )),
        }
    }
}

/// Parts uploading at once per upload: one stream to Garage ran at 46
/// MB/s, two at 76, four at 85 (bench/README.md); with four the benchmark's
/// peak memory rose from 88 MiB (one) to 108 MiB, the reference's. Memory
/// per upload stays below this many parts plus one.
const PARTS_IN_FLIGHT: usize = 2;
/// S3's smallest part but the last.
const MIN_PART: usize = 5 << 20;

pub struct Writer {
    driver: S3Driver,
    path: String,
    state: State,
    /// The committed state this writer started from.
    base: Commit,
    /// Bytes not yet in a part: the old tail, then what was written.
    pending: BytesMut,
    /// Parts uploaded by this writer, after `base`'s (in any order until commit).
    parts: Vec<Part>,
    uploading: tokio::task::JoinSet<Result<Part, DriverError>>,
    /// Bytes handed to part uploads by this writer, finished or not.
    sent: u64,
    next_part: i32,
    checkpoint: Option<Bytes>,
}

impl Writer {
    pub(super) fn new(driver: S3Driver, path: String, state: State) -> Writer {
        let base = state.current.clone();
        let pending = BytesMut::from(&base.tail[..]);
        let next_part = base.parts.len() as i32 + 1;
        Writer {
            driver,
            path,
            state,
            base,
            pending,
            parts: vec![],
            uploading: tokio::task::JoinSet::new(),
            sent: 0,
            next_part,
            checkpoint: None,
        }
    }

    async fn upload_id(&mut self) -> Result<String, DriverError> {
        if let Some(id) = &self.state.upload_id {
            return Ok(id.clone());
        }
        // The parts key exists before the upload does, so a removal that
        // lists the keys knows to abort it.
        let parts = parts_of(&self.path);
        self.driver.put_plain(&parts, Bytes::new()).await?;
        let id = self.driver.create_upload(&parts).await?;
        self.state.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Starts uploading the first `len` pending bytes as the next part,
    /// waiting first while [`PARTS_IN_FLIGHT`] are under way.
    async fn send_part(&mut self, len: usize) -> Result<(), DriverError> {
        let upload_id = self.upload_id().await?;
        while self.uploading.len() >= PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let body = self.pending.split_to(len).freeze();
        let (driver, key, number) = (self.driver.clone(), parts_of(&self.path), self.next_part);
        self.next_part += 1;
        self.sent += len as u64;
        self.uploading
            .spawn(async move { driver.upload_part(&key, &upload_id, number, body).await });
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<(), DriverError> {
        if let Some(done) = self.uploading.join_next().await {
            let part = done.map_err(|e| other(&self.path, e.to_string()))??;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn flush_full_chunks(&mut self) -> Result<(), DriverError> {
        let chunk = self.driver.chunk_size as usize;
        while self.pending.len() >= chunk {
            self.send_part(chunk).await?;
        }
        Ok(())
    }

    /// Before a commit: what is left becomes a part too if S3 takes it as
    /// one (the state object then carries no large tail to rewrite), and
    /// every part must have arrived.
    async fn finish_parts(&mut self) -> Result<(), DriverError> {
        if self.pending.len() >= MIN_PART {
            self.send_part(self.pending.len()).await?;
        }
        while !self.uploading.is_empty() {
            self.collect_one().await?;
        }
        self.parts.sort_by_key(|p| p.number);
        Ok(())
    }
}

impl FileWriter for Writer {
    fn write(&mut self, chunks: Vec<Bytes>) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            for c in chunks {
                self.pending.extend_from_slice(&c);
                self.flush_full_chunks().await?;
            }
            Ok(())
        })
    }

    fn size(&self) -> u64 {
        let base: u64 = self.base.parts.iter().map(|p| p.size).sum();
        base + self.sent + self.pending.len() as u64
    }

    fn wants_checkpoint(&self) -> bool {
        true
    }

    fn set_checkpoint(&mut self, state: Bytes) {
        self.checkpoint = Some(state);
    }

    fn commit(self: Box<Self>) -> DriverFuture<'static, ()> {
        Box::pin(async move {
            let mut w = *self;
            w.finish_parts().await?;
            let Writer {
                driver,
                path,
                mut state,
                base,
                pending,
                parts,
                checkpoint,
                ..
            } = w;
            let mut current = base.clone();
            current.parts.extend(parts);
            current.tail = pending.freeze();
            current.checkpoint =
                checkpoint.map(|c| base64::engine::general_purpose::STANDARD.encode(c));
            if current.size() != base.size() {
                state.previous = Some(base);
            }
            state.current = current;
            driver.save(&path, &state).await
        })
    }
}
