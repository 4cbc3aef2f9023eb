//! The contract of [`StorageDriver`], as properties every driver must pass,
//! so a new backend is held to what the registry above relies on rather than
//! to what the filesystem happens to do (distribution keeps the same in
//! `registry/storage/driver/testsuites`). A driver runs them all with
//! [`driver_suite!`]; each property is then its own test,
//! `storage::driver::<driver>::suite::<property>`, on fresh storage.
//!
//! Crashes are out of reach here: a property runs inside the test process
//! and cannot check what survives one. What the trait promises for a crash
//! (`put_content`, `move_to` and a writer's `commit` durable once they
//! return, staged objects once `persist` returns, a `discard` possibly
//! undone) is tested by `tests/crash.rs`: it SIGKILLs the real server
//! mid-request and at named crash points (`src/crashpoint.rs`), restarts
//! it on the same storage and checks it serves the old state or the new
//! one, never a mixture. A new driver must pass that file too, against a
//! server configured with it: `tests/common` writes a `storage.filesystem`
//! section today and has to write the new driver's instead, and the checks
//! in `tests/crash.rs` that read the data directory (`upload_files`,
//! `blob_path`) have to ask the store. A kill loses nothing the kernel
//! already holds, so for the filesystem driver those tests cover atomicity,
//! not power loss; its syncs are checked only by reading the code.

use super::{ChunkStream, DriverError, StorageDriver};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// Fresh, empty storage for one property, removed when dropped.
pub trait Fixture {
    fn driver(&self) -> Arc<dyn StorageDriver>;
}

/// One test per property for a driver: `driver_suite!(suite, make)`, where
/// `make` is an expression giving a new [`Fixture`] each time. Listing each
/// property here, as a function the suite would otherwise not use, makes
/// one left out a dead-code error.
macro_rules! driver_suite {
    ($module:ident, $make:expr) => {
        $crate::storage::driver::testsuite::driver_suite!(@each $module, $make,
            content_round_trips,
            put_content_replaces_atomically,
            stage_replaces_atomically,
            move_replaces_atomically,
            staged_objects_persist,
            reader_starts_at_offset,
            chunks_stream_a_range,
            writer_appends_or_truncates,
            large_write_reads_back_exactly,
            concurrent_writers_each_keep_their_bytes,
            stat_reports_size_and_modified,
            list_names_direct_children,
            list_many_treats_absent_as_empty,
            move_replaces_target_and_creates_directories,
            move_takes_a_directory_whole,
            delete_removes_an_object_or_a_tree,
            discard_frees_the_name_at_once,
            listings_agree_with_deletes_at_once,
            touch_refreshes_modified_and_creates_nothing,
            truncate_cuts_back_and_appends_continue,
            remove_empty_dir_keeps_content,
            puts_and_deletes_race_remove_empty_dir,
        );
    };
    (@each $module:ident, $make:expr, $($property:ident,)*) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $property() {
                    use $crate::storage::driver::testsuite::Fixture;
                    let fixture = $make;
                    $crate::storage::driver::testsuite::$property(fixture.driver()).await;
                }
            )*
        }
    };
}
pub(crate) use driver_suite;

type Driver = Arc<dyn StorageDriver>;

/// Bytes without a short period, so a read from the wrong offset is seen.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// Compares large byte strings, naming the first difference instead of
/// printing megabytes.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        first.is_none() && got.len() == want.len(),
        "{what}: {} bytes where {} were expected, first difference at {first:?}",
        got.len(),
        want.len(),
    );
}

fn assert_not_found<T>(r: Result<T, DriverError>, what: &str) {
    match r {
        Err(DriverError::NotFound(_)) => {}
        Err(e) => panic!("{what}: {e}, not NotFound"),
        Ok(_) => panic!("{what}: succeeded, not NotFound"),
    }
}

async fn put(d: &Driver, path: &str, content: impl Into<Bytes>) {
    d.put_content(path.into(), content.into()).await.unwrap();
}

async fn get(d: &Driver, path: &str) -> Bytes {
    d.get_content(path.into()).await.unwrap()
}

async fn read_from(d: &Driver, path: &str, offset: u64) -> Vec<u8> {
    let mut out = vec![];
    let mut r = d.reader(path.into(), offset).await.unwrap();
    r.read_to_end(&mut out).await.unwrap();
    out
}

async fn drain(mut s: ChunkStream) -> Vec<u8> {
    let mut out = vec![];
    while let Some(c) = std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

async fn sorted_list(d: &Driver, path: &str) -> Vec<String> {
    let mut names = d.list(path.into()).await.unwrap();
    names.sort();
    names
}

/// A directory that holds nothing: stores with directories list it empty,
/// stores without them do not know the name.
async fn assert_nothing_in(d: &Driver, path: &str) {
    match d.list(path.into()).await {
        Ok(names) => assert!(names.is_empty(), "{path}: {names:?}"),
        Err(e) => assert!(matches!(e, DriverError::NotFound(_)), "{path}: {e}"),
    }
}

/// Writes `pieces` at `path` through a writer opened with `append`,
/// checking its size as it goes, and commits.
async fn write(d: &Driver, path: &str, append: bool, pieces: &[Bytes]) {
    let mut w = d.writer(path.into(), append).await.unwrap();
    let mut size = w.size();
    for batch in pieces.chunks(3) {
        w.write(batch.to_vec()).await.unwrap();
        size += batch.iter().map(|b| b.len() as u64).sum::<u64>();
        assert_eq!(w.size(), size, "{path}");
    }
    w.commit().await.unwrap();
}

/// Splits `data` into pieces of uneven sizes, some of them tiny.
fn uneven(data: &Bytes) -> Vec<Bytes> {
    const SIZES: [usize; 8] = [
        1,
        4095,
        70_001,
        (1 << 20) + 3,
        17,
        (5 << 20) + 11,
        4096,
        333_333,
    ];
    let (mut out, mut at) = (vec![], 0);
    for size in SIZES.iter().cycle() {
        if at == data.len() {
            return out;
        }
        let end = (at + size).min(data.len());
        out.push(data.slice(at..end));
        at = end;
    }
    unreachable!("the sizes cycle")
}

pub async fn content_round_trips(d: Driver) {
    for content in [pattern(100, 1), Bytes::new(), pattern(200 << 10, 2)] {
        put(&d, "a/b/c", content.clone()).await;
        assert_same(&get(&d, "a/b/c").await, &content, "a/b/c");
    }
    put(&d, "a/b/c", "short").await;
    assert_eq!(get(&d, "a/b/c").await, "short", "no tail of the longer one");
    assert_not_found(d.get_content("a/b/none".into()).await, "absent object");
    assert_not_found(d.get_content("x/y".into()).await, "absent directory");
}

/// How an object is replaced while readers watch it.
#[derive(Clone, Copy)]
enum Replace {
    Put,
    Stage,
    /// Written elsewhere, then moved over it.
    Move,
}

const WATCHED: &str = "w/obj";

impl Replace {
    async fn write(self, d: &Driver, n: u32, content: Bytes) {
        match self {
            Replace::Put => put(d, WATCHED, content).await,
            Replace::Stage => {
                let scope = "w".to_string();
                d.stage(WATCHED.into(), content, scope).await.unwrap();
            }
            Replace::Move => {
                let from = format!("w-new/{n}");
                put(d, &from, content).await;
                d.move_to(from, WATCHED.into()).await.unwrap();
            }
        }
    }
}

/// Version `n` of the watched object: its number, then bytes whose length
/// alternates between a link's and more than a small read's.
fn version(n: u32) -> Bytes {
    let len = if n.is_multiple_of(2) {
        60 + n
    } else {
        (100 << 10) + n
    };
    let mut v = n.to_le_bytes().to_vec();
    v.extend_from_slice(&pattern(len as usize, n as u8));
    v.into()
}

fn assert_whole_version(got: &[u8]) {
    assert!(got.len() >= 4, "{} bytes: a prefix", got.len());
    let n = u32::from_le_bytes(got[..4].try_into().unwrap());
    assert_same(got, &version(n), &format!("version {n}"));
}

/// Reads the watched object until `done`, whole and through a reader in
/// turn; every read must find one whole version. Returns the reads made.
async fn watch(d: Driver, done: Arc<AtomicBool>) -> usize {
    let mut reads = 0usize;
    while !done.load(Ordering::Relaxed) {
        let got = if reads.is_multiple_of(2) {
            get(&d, WATCHED).await.to_vec()
        } else {
            read_from(&d, WATCHED, 0).await
        };
        assert_whole_version(&got);
        reads += 1;
    }
    reads
}

/// Replaces an object a hundred times while three readers read it.
async fn replace_while_reading(d: Driver, how: Replace) {
    how.write(&d, 0, version(0)).await;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(watch(d.clone(), done.clone())))
        .collect();
    for n in 1..=100 {
        how.write(&d, n, version(n)).await;
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "every reader read");
    }
    assert_same(&get(&d, WATCHED).await, &version(100), "the last version");
}

pub async fn put_content_replaces_atomically(d: Driver) {
    replace_while_reading(d, Replace::Put).await;
}

pub async fn stage_replaces_atomically(d: Driver) {
    replace_while_reading(d, Replace::Stage).await;
}

pub async fn move_replaces_atomically(d: Driver) {
    replace_while_reading(d, Replace::Move).await;
}

/// Staged objects read back at once, in a scope whose directories do not
/// exist yet, and persisting them leaves them as they are.
pub async fn staged_objects_persist(d: Driver) {
    let scope = "r/_uploads/u".to_string();
    let names = ["startedat", "data"];
    for (i, name) in names.iter().enumerate() {
        let path = format!("{scope}/{name}");
        d.stage(path.clone(), pattern(10 + i, 3), scope.clone())
            .await
            .unwrap();
        assert_eq!(get(&d, &path).await, pattern(10 + i, 3));
    }
    let paths = names.iter().map(|n| format!("{scope}/{n}")).collect();
    d.persist(paths, scope.clone()).await.unwrap();
    assert_eq!(sorted_list(&d, &scope).await, ["data", "startedat"]);
    assert_eq!(get(&d, "r/_uploads/u/startedat").await, pattern(10, 3));
}

pub async fn reader_starts_at_offset(d: Driver) {
    let content = pattern((100 << 10) + 7, 4);
    put(&d, "o/data", content.clone()).await;
    let len = content.len();
    for offset in [0, 1, 4097, len - 1, len] {
        let got = read_from(&d, "o/data", offset as u64).await;
        assert_same(&got, &content[offset..], &format!("from {offset}"));
    }
    assert_not_found(d.reader("o/none".into(), 0).await, "absent object");
}

pub async fn chunks_stream_a_range(d: Driver) {
    let content = pattern((3 << 20) + 5, 5);
    put(&d, "c/data", content.clone()).await;
    let len = content.len() as u64;
    for (offset, n) in [
        (0, len),
        (1, len - 1),
        (4095, (2 << 20) + 3),
        (len, 0),
        (10, 0),
    ] {
        let got = drain(d.chunks("c/data".into(), offset, n).await.unwrap()).await;
        let want = &content[offset as usize..(offset + n) as usize];
        assert_same(&got, want, &format!("{n} bytes from {offset}"));
    }
    assert_not_found(d.chunks("c/none".into(), 0, 1).await, "absent object");
}

/// A writer creates its object (and directories), appends after what is
/// there, or truncates it; empty batches and pieces change nothing.
pub async fn writer_appends_or_truncates(d: Driver) {
    let (a, b, c) = (pattern(5000, 6), pattern(3, 7), pattern(9000, 8));
    let path = "u/1/data";
    write(&d, path, false, &[a.clone(), Bytes::new(), b.clone()]).await;
    assert_eq!(get(&d, path).await, [a.clone(), b.clone()].concat());
    let mut w = d.writer(path.into(), true).await.unwrap();
    assert_eq!(
        w.size(),
        (a.len() + b.len()) as u64,
        "an append starts at the end"
    );
    w.write(vec![]).await.unwrap();
    w.write(vec![c.clone()]).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(get(&d, path).await, [a, b, c.clone()].concat());
    let w = d.writer(path.into(), false).await.unwrap();
    assert_eq!(w.size(), 0, "truncated");
    w.commit().await.unwrap();
    assert!(get(&d, path).await.is_empty());
    write(&d, path, false, std::slice::from_ref(&c)).await;
    assert_eq!(get(&d, path).await, c);
}

/// 32 MiB in uneven pieces, through two writers, moved into place and read
/// back byte for byte there. Read where it was written only once moved, as
/// the registry does (an upload's data becomes a blob): a store that sends
/// the pieces as parts (S3 multipart) has the object only once it is
/// complete, which the move does (`s3/appendable.rs`).
pub async fn large_write_reads_back_exactly(d: Driver) {
    let data = pattern(32 << 20, 9);
    let pieces = uneven(&data);
    let (first, rest) = pieces.split_at(pieces.len() / 3);
    write(&d, "big/data", false, first).await;
    write(&d, "big/data", true, rest).await;
    let len = data.len() as u64;
    assert_eq!(d.stat("big/data".into()).await.unwrap().size, len);
    d.move_to("big/data".into(), "big/blob".into())
        .await
        .unwrap();
    assert_not_found(d.stat("big/data".into()).await, "moved source");
    assert_eq!(d.stat("big/blob".into()).await.unwrap().size, len);
    assert_same(&read_from(&d, "big/blob", 0).await, &data, "reader");
    let streamed = drain(d.chunks("big/blob".into(), 0, len).await.unwrap()).await;
    assert_same(&streamed, &data, "chunks");
}

/// Eight writers at once in one new directory, half through writers and
/// half with `put_content`: each object holds exactly its own bytes.
pub async fn concurrent_writers_each_keep_their_bytes(d: Driver) {
    let objects = |i: usize| (format!("many/{i}"), pattern((3 << 20) / 2 + i, i as u8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let d = d.clone();
            tokio::spawn(async move {
                let (path, data) = objects(i);
                match i % 2 {
                    0 => write(&d, &path, false, &uneven(&data)).await,
                    _ => put(&d, &path, data).await,
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..8 {
        let (path, data) = objects(i);
        assert_same(&get(&d, &path).await, &data, &path);
    }
    assert_eq!(d.list("many".into()).await.unwrap().len(), 8);
}

/// Clocks may differ between the tests and a remote store by this much.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

fn assert_recent(t: SystemTime) {
    let now = SystemTime::now();
    let off = now.duration_since(t).unwrap_or_else(|e| e.duration());
    assert!(off < CLOCK_SLACK, "{t:?} is not around now, {now:?}");
}

pub async fn stat_reports_size_and_modified(d: Driver) {
    put(&d, "s/a", pattern(1234, 10)).await;
    put(&d, "s/empty", Bytes::new()).await;
    let info = d.stat("s/a".into()).await.unwrap();
    assert_eq!(info.size, 1234);
    assert_recent(info.modified);
    assert_eq!(d.stat("s/empty".into()).await.unwrap().size, 0);
    write(&d, "s/a", true, &[pattern(10, 11)]).await;
    assert_eq!(d.stat("s/a".into()).await.unwrap().size, 1244);
    assert_not_found(d.stat("s/none".into()).await, "absent object");
}

/// Names, not paths, of objects and directories alike, one level deep; a
/// name that only starts like a directory's is not inside it.
pub async fn list_names_direct_children(d: Driver) {
    for path in ["l/a", "l/b/c", "l/b/d/e", "l/bb/f", "l/x.y"] {
        put(&d, path, "x").await;
    }
    assert_eq!(sorted_list(&d, "l").await, ["a", "b", "bb", "x.y"]);
    assert_eq!(sorted_list(&d, "l/b").await, ["c", "d"]);
    assert_not_found(d.list("none".into()).await, "absent directory");
    assert_not_found(d.list("l/none".into()).await, "absent subdirectory");
    d.delete("l/b/d/e".into()).await.unwrap();
    assert_nothing_in(&d, "l/b/d").await;
}

pub async fn list_many_treats_absent_as_empty(d: Driver) {
    for path in ["m/a/1", "m/a/2", "m/c/3"] {
        put(&d, path, "x").await;
    }
    let dirs = ["m/a", "m/b", "m/c"].map(String::from).to_vec();
    let mut lists = d.list_many(dirs).await.unwrap();
    lists.iter_mut().for_each(|l| l.sort());
    assert_eq!(lists, [vec!["1", "2"], vec![], vec!["3"]]);
    assert!(d.list_many(vec![]).await.unwrap().is_empty());
}

pub async fn move_replaces_target_and_creates_directories(d: Driver) {
    put(&d, "mv/a", "A").await;
    put(&d, "mv/b", "B").await;
    d.move_to("mv/a".into(), "mv/b".into()).await.unwrap();
    assert_eq!(get(&d, "mv/b").await, "A");
    assert_not_found(d.get_content("mv/a".into()).await, "moved source");
    d.move_to("mv/b".into(), "mv/new/dir/c".into())
        .await
        .unwrap();
    assert_eq!(get(&d, "mv/new/dir/c").await, "A");
    assert_eq!(sorted_list(&d, "mv").await, ["new"]);
    let absent = d.move_to("mv/none".into(), "mv/new/dir/c".into()).await;
    assert_not_found(absent, "absent source");
    assert_eq!(get(&d, "mv/new/dir/c").await, "A", "target untouched");
}

/// A directory moves with all it holds onto a free name; onto a directory
/// that holds something it fails and both stay as they were, which is how
/// the registry notices a tag another push created meanwhile.
pub async fn move_takes_a_directory_whole(d: Driver) {
    put(&d, "t/staging/current/link", "new").await;
    put(&d, "t/staging/index/x/link", "new").await;
    d.move_to("t/staging".into(), "t/tags/v1".into())
        .await
        .unwrap();
    assert_eq!(sorted_list(&d, "t/tags/v1").await, ["current", "index"]);
    assert_eq!(get(&d, "t/tags/v1/index/x/link").await, "new");
    assert_not_found(d.list("t/staging".into()).await, "moved directory");
    put(&d, "t/other/current/link", "other").await;
    let onto = d.move_to("t/other".into(), "t/tags/v1".into()).await;
    assert!(onto.is_err(), "moved onto a directory that holds something");
    assert_eq!(get(&d, "t/tags/v1/current/link").await, "new");
    assert_eq!(sorted_list(&d, "t/tags/v1").await, ["current", "index"]);
    assert_eq!(get(&d, "t/other/current/link").await, "other");
}

pub async fn delete_removes_an_object_or_a_tree(d: Driver) {
    for path in [
        "d/keep",
        "d/obj",
        "d/tree/a",
        "d/tree/sub/b",
        "d/treehouse/c",
    ] {
        put(&d, path, "x").await;
    }
    d.delete("d/obj".into()).await.unwrap();
    assert_not_found(d.get_content("d/obj".into()).await, "deleted object");
    d.delete("d/tree".into()).await.unwrap();
    assert_not_found(d.list("d/tree".into()).await, "deleted tree");
    assert_not_found(d.get_content("d/tree/sub/b".into()).await, "inside it");
    assert_eq!(sorted_list(&d, "d").await, ["keep", "treehouse"]);
    assert_eq!(
        get(&d, "d/treehouse/c").await,
        "x",
        "a name it only prefixes"
    );
    assert_not_found(d.delete("d/obj".into()).await, "deleted again");
}

/// Discarded data is gone when the call returns, large files included, and
/// the name can be used again right away.
pub async fn discard_frees_the_name_at_once(d: Driver) {
    put(&d, "up/1/startedat", "t0").await;
    write(&d, "up/1/data", false, &uneven(&pattern(17 << 20, 12))).await;
    d.discard("up/1".into()).await.unwrap();
    assert_not_found(d.list("up/1".into()).await, "discarded tree");
    assert_not_found(d.get_content("up/1/startedat".into()).await, "inside it");
    assert_nothing_in(&d, "up").await;
    write(&d, "up/1/data", false, &[pattern(10, 13)]).await;
    assert_eq!(get(&d, "up/1/data").await, pattern(10, 13));
    d.discard("up/1/data".into()).await.unwrap();
    assert_not_found(d.stat("up/1/data".into()).await, "discarded object");
    assert_not_found(d.discard("up/1/data".into()).await, "discarded again");
}

/// Listing right after a delete, many times: Garage lists a key just
/// deleted after about one delete in thirty. A name written again right
/// after its delete is listed.
pub async fn listings_agree_with_deletes_at_once(d: Driver) {
    put(&d, "gone/keep", "k").await;
    for i in 0..100 {
        let dir = format!("gone/{i}");
        put(&d, &format!("{dir}/a"), "a").await;
        put(&d, &format!("{dir}/sub/b"), "b").await;
        d.delete(dir.clone()).await.unwrap();
        assert_not_found(d.list(dir.clone()).await, "deleted tree");
        assert_eq!(
            sorted_list(&d, "gone").await,
            ["keep"],
            "after deleting {dir}"
        );
        if i % 10 == 0 {
            put(&d, &format!("{dir}/a"), "again").await;
            assert_eq!(sorted_list(&d, &dir).await, ["a"], "{dir} written again");
            d.delete(dir).await.unwrap();
        }
    }
}

/// Long enough for a store that keeps whole seconds (S3's `Last-Modified`)
/// to show a later time.
const TIME_STEP: Duration = Duration::from_millis(1100);

/// A touch moves the time garbage collection reads, `last_referenced`: the
/// object's own time, or (a bucket, where changing it means copying the
/// object) a record of the touch kept apart.
pub async fn touch_refreshes_modified_and_creates_nothing(d: Driver) {
    put(&d, "tt/data", "x").await;
    let before = d.last_referenced("tt/data".into()).await.unwrap();
    tokio::time::sleep(TIME_STEP).await;
    d.touch("tt/data".into()).await.unwrap();
    let after = d.last_referenced("tt/data".into()).await.unwrap();
    let moved = after.duration_since(before).unwrap_or_default();
    assert!(moved >= Duration::from_secs(1), "{before:?} -> {after:?}");
    assert_recent(after);
    let size = d.stat("tt/data".into()).await.unwrap().size;
    assert_eq!((size, get(&d, "tt/data").await), (1, "x".into()));
    assert_not_found(d.touch("tt/none".into()).await, "absent object");
    assert_not_found(d.touch("none/data".into()).await, "absent directory");
    assert_not_found(d.stat("tt/none".into()).await, "touched absent object");
    assert_not_found(d.list("none".into()).await, "touched absent directory");
}

/// An append nobody acknowledged (a PUT's final chunk, interrupted) is cut
/// off where it began, and the retried append continues from there. Only
/// that: a store that keeps an object as a list of commits (S3) can undo
/// the last one, not cut anywhere.
pub async fn truncate_cuts_back_and_appends_continue(d: Driver) {
    let data = pattern(3 << 20, 7);
    let (acknowledged, rest) = (data.slice(..1 << 20), data.slice(1 << 20..));
    write(&d, "tr/data", false, &uneven(&acknowledged)).await;
    write(&d, "tr/data", true, &uneven(&rest)).await;
    d.truncate("tr/data".into(), 1 << 20).await.unwrap();
    assert_eq!(d.stat("tr/data".into()).await.unwrap().size, 1 << 20);
    assert_same(&get(&d, "tr/data").await, &acknowledged, "cut back");
    write(&d, "tr/data", true, &uneven(&rest)).await;
    assert_same(&get(&d, "tr/data").await, &data, "cut back, then appended");
    assert_not_found(d.truncate("tr/none".into(), 0).await, "absent object");
}

pub async fn remove_empty_dir_keeps_content(d: Driver) {
    put(&d, "e/full/x", "x").await;
    put(&d, "e/nest/sub/y", "y").await;
    assert!(!d.remove_empty_dir("e/full".into()).await.unwrap());
    assert!(!d.remove_empty_dir("e/nest".into()).await.unwrap());
    assert_eq!(get(&d, "e/full/x").await, "x");
    assert_eq!(get(&d, "e/nest/sub/y").await, "y");
    assert!(!d.remove_empty_dir("e/none".into()).await.unwrap());
    d.delete("e/full/x".into()).await.unwrap();
    let removed = d.remove_empty_dir("e/full".into()).await.unwrap();
    assert_eq!(sorted_list(&d, "e").await, ["nest"], "removed: {removed}");
}

/// Puts and deletes in a directory that another task keeps trying to
/// remove: each put succeeds and its object is there afterwards, and each
/// delete of an object that was there succeeds rather than answering that
/// it was absent.
pub async fn puts_and_deletes_race_remove_empty_dir(d: Driver) {
    let done = Arc::new(AtomicBool::new(false));
    let remover = {
        let (d, done) = (d.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                d.remove_empty_dir("race/dir".into()).await.unwrap();
            }
        })
    };
    for n in 0..200u32 {
        let path = format!("race/dir/{n}");
        put(&d, &path, n.to_string()).await;
        assert_eq!(get(&d, &path).await, n.to_string());
        d.delete(path).await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    remover.await.unwrap();
}
