use super::*;
use crate::metrics::Metrics;
use bytes::Bytes;

fn config(dir: &std::path::Path, quota: u64) -> SpoolConfig {
    SpoolConfig { dir: dir.to_path_buf(), quota: Arc::new(SpoolQuota::new(quota)), metrics: Arc::new(Metrics::new()) }
}

async fn read_all(mut reader: SpoolReader) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn small_body_stays_in_memory_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 1024, None, true).unwrap();
    spool.append(&Bytes::from_static(b"hello ")).unwrap();
    spool.append(&Bytes::from_static(b"world")).unwrap();
    spool.finish();
    assert!(!spool.on_disk());
    assert_eq!(read_all(spool.reader()).await.unwrap(), b"hello world");
}

#[tokio::test]
async fn large_body_spills_to_an_unlinked_file_and_frees_quota_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let body = pattern(1_000_003);
    let spool = Spool::new(cfg.clone(), 4096, None, true).unwrap();
    for chunk in body.chunks(7919) {
        spool.append(&Bytes::copy_from_slice(chunk)).unwrap();
    }
    spool.finish();
    assert!(spool.on_disk());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spool files are unlinked");
    assert_eq!(cfg.metrics.spool_files.get(), 1);
    // Two readers replay the same bytes independently.
    assert_eq!(read_all(spool.reader()).await.unwrap(), body);
    assert_eq!(read_all(spool.reader()).await.unwrap(), body);
    assert!(cfg.quota.used() >= 1_000_003 - 65536);
    drop(spool);
    assert_eq!(cfg.quota.used(), 0);
    assert_eq!(cfg.metrics.spool_files.get(), 0);
    assert_eq!(cfg.metrics.spool_bytes.get(), 0);
}

#[tokio::test]
async fn declared_length_over_quota_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    let err = Spool::new(cfg.clone(), 1024, Some(2 << 20), true).err().expect("over quota");
    assert!(matches!(err, SpoolError::QuotaExceeded { quota } if quota == 1 << 20));
    assert_eq!(cfg.quota.used(), 0);
}

#[tokio::test]
async fn growing_body_over_quota_fails_without_touching_other_spools() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 300_000);
    let first = Spool::new(cfg.clone(), 0, Some(200_000), true).unwrap();
    let second = Spool::new(cfg.clone(), 0, None, true).unwrap();
    let chunk = pattern(65536);
    let mut failed = false;
    for _ in 0..4 {
        if let Err(err) = second.append(&Bytes::copy_from_slice(&chunk)) {
            assert!(matches!(err, SpoolError::QuotaExceeded { .. }));
            failed = true;
            break;
        }
    }
    assert!(failed, "the second spool must hit the quota");
    for _ in 0..3 {
        first.append(&Bytes::copy_from_slice(&chunk)).unwrap();
    }
    drop(second);
    // The first spool wrote less than it reserved up front: it still holds exactly its reservation.
    assert_eq!(cfg.quota.used(), 200_000);
}

#[tokio::test]
async fn reader_follows_a_live_writer_and_fails_on_abort() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 100, None, true).unwrap();
    let reader = tokio::spawn(read_all(spool.reader()));
    for chunk in pattern(300_000).chunks(10_000) {
        spool.append(&Bytes::copy_from_slice(chunk)).unwrap();
        tokio::task::yield_now().await;
    }
    spool.finish();
    assert_eq!(reader.await.unwrap().unwrap(), pattern(300_000));

    let aborted = Spool::new(config(dir.path(), 0), 100, None, true).unwrap();
    let reader = tokio::spawn(read_all(aborted.reader()));
    aborted.append(&Bytes::from_static(b"partial")).unwrap();
    aborted.abort();
    assert!(matches!(reader.await.unwrap(), Err(ReadError::Aborted)));
}

#[tokio::test]
async fn a_declared_length_gets_its_disk_blocks_up_front_and_a_disk_too_small_answers_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 1024, Some(8 << 20), true).unwrap();
    spool.append(&Bytes::from_static(b"first bytes")).unwrap();
    let file = spool.lock().file.clone().expect("straight to disk");
    use std::os::unix::fs::MetadataExt;
    let metadata = file.metadata().unwrap();
    assert!(metadata.blocks() * 512 >= 8 << 20, "blocks allocated for the declared length");
    assert_eq!(metadata.len(), 0, "the size is what was written (the first bytes are still in the write batch)");

    // No disk here holds a petabyte: refused when the first byte arrives, before the body is read.
    let huge = Spool::new(config(dir.path(), 0), 1024, Some(1 << 50), true).unwrap();
    let err = huge.append(&Bytes::from_static(b"x")).expect_err("disk full");
    assert!(matches!(err, SpoolError::DiskFull), "{err:?}");
}

#[test]
fn read_back_returns_exactly_the_bytes_asked_for_and_fails_past_the_end() {
    let file = tempfile::tempfile().unwrap();
    let body = pattern(300_000);
    file.write_all_at(&body, 0).unwrap();
    assert_eq!(read_back(&file, 1234, 200_000).unwrap(), &body[1234..201_234]);
    assert_eq!(read_back(&file, 299_999, 1).unwrap(), &body[299_999..]);
    let err = read_back(&file, 299_000, 2_000).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

/// Polls a future once: `true` if it completed.
fn ready_now<F: std::future::Future>(future: F) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::pin!(future).poll(&mut cx).is_ready()
}

#[tokio::test]
async fn a_tee_writer_waits_for_its_reader_beyond_the_lead_and_resumes_as_it_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 0, None, true).unwrap();
    let chunk = Bytes::from(pattern(256 * 1024));
    let mut reader = spool.reader();
    let mut written = 0;
    while written <= PACE_LEAD {
        spool.append(&chunk).unwrap();
        written += chunk.len() as u64;
    }
    assert!(!ready_now(spool.paced()), "more than the lead ahead of an open reader: wait");
    let waiting = tokio::spawn({
        let spool = spool.clone();
        async move { spool.paced().await }
    });
    // The waiting writer published what it had: the reader can catch up, which lets the writer go on.
    let mut read = 0;
    while read + PACE_LEAD / 2 < written {
        read += reader.next_chunk().await.unwrap().unwrap().len() as u64;
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("writer resumed").unwrap();
    assert!(ready_now(spool.paced()));
}

#[tokio::test]
async fn a_tee_writer_never_waits_without_a_reader_and_a_reader_that_goes_away_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 0, None, true).unwrap();
    let chunk = Bytes::from(pattern(PACE_LEAD as usize * 2));
    spool.append(&chunk).unwrap();
    assert!(ready_now(spool.paced()), "no attempt reading: the spool takes the client's pace");
    let reader = spool.reader();
    assert!(!ready_now(spool.paced()));
    let waiting = tokio::spawn({
        let spool = spool.clone();
        async move { spool.paced().await }
    });
    tokio::task::yield_now().await;
    drop(reader); // the attempt failed
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("writer released").unwrap();

    // A Buffered spool is never read while it is written: no pacing at all.
    let buffered = Spool::new(config(dir.path(), 0), 0, None, false).unwrap();
    buffered.append(&chunk).unwrap();
    let _reader = buffered.reader();
    assert!(ready_now(buffered.paced()));
}

#[tokio::test]
async fn bytes_a_tee_reader_has_taken_leave_the_recent_window() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(config(dir.path(), 0), 0, None, true).unwrap();
    let mut reader = spool.reader();
    let chunk = Bytes::from(pattern(64 * 1024));
    for _ in 0..8 {
        spool.append(&chunk).unwrap();
    }
    assert_eq!(spool.inner.lock().unwrap().recent_bytes, 8 * chunk.len());
    spool.publish();
    let mut read = 0;
    while read < 8 * chunk.len() {
        read += reader.next_chunk().await.unwrap().unwrap().len();
    }
    spool.append(&chunk).unwrap();
    assert_eq!(spool.inner.lock().unwrap().recent_bytes, chunk.len(), "only the chunk not yet read is held");

    // No attempt reading (it failed, or waits for an endpoint): the window shrinks to its idle size.
    drop(reader);
    for _ in 0..32 {
        spool.append(&chunk).unwrap();
    }
    assert!(spool.inner.lock().unwrap().recent_bytes <= IDLE_WINDOW, "a request waiting holds little");
}

/// Descriptors this process holds open on files in `dir` (an unlinked file shows as `dir/#inode (deleted)`).
fn open_files_in(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count()
}

#[tokio::test]
async fn a_large_spool_file_is_closed_in_the_background_and_its_quota_given_back_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    // Large enough that closing it (freeing its page cache and blocks) takes a few milliseconds.
    let len = 64 * 1024 * 1024;
    let spool = Spool::new(cfg.clone(), 4096, Some(len), false).unwrap();
    spool.append(&Bytes::from(vec![7u8; len as usize])).unwrap();
    spool.finish();
    assert_eq!(open_files_in(dir.path()), 1);
    drop(spool);
    // The descriptor goes within moments, on the blocking pool; until it has, the file's disk stays counted. The
    // quota is read first: once it shows the bytes given back, the file must already be closed.
    let closed = async {
        loop {
            let (used, files) = (cfg.quota.used(), cfg.metrics.spool_files.get());
            let open = open_files_in(dir.path());
            assert!(used > 0 || open == 0, "the quota was given back while the file was still open");
            if used == 0 && files == 0 && open == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), closed).await.expect("the spool file is closed");
}

/// Reads a spool the way an upstream connection does, which may send only part of what it was handed: takes each
/// segment, says it consumed only the first half of it (at least one byte), and asks again from there. Returns the
/// bytes and the largest segment.
async fn read_segments_in_halves(mut reader: SpoolReader) -> (Vec<u8>, usize) {
    let (mut out, mut largest) = (Vec::new(), 0);
    while let Some(segment) = reader.next_segment().await.unwrap() {
        assert!(!segment.is_empty(), "a segment holds bytes");
        let half = segment.len().div_ceil(2);
        out.extend_from_slice(&segment[..half]);
        reader.consumed(half as u64);
        largest = largest.max(segment.len());
    }
    (out, largest)
}

#[tokio::test]
async fn segments_hold_the_body_from_any_offset_in_memory_in_the_file_and_in_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let small = Spool::new(config(dir.path(), 0), 1024, None, false).unwrap();
    small.append(&Bytes::from_static(b"hello world")).unwrap();
    small.finish();
    let (read, _) = read_segments_in_halves(small.reader()).await;
    assert_eq!(read, b"hello world");

    // Past the memory buffer: most of it read back from the file, a tail that stays in the write batch.
    let body = pattern(3 * 1024 * 1024 + 1000);
    let large = Spool::new(config(dir.path(), 0), 4096, Some(body.len() as u64), false).unwrap();
    for chunk in body.chunks(1024 * 1024) {
        large.append(&Bytes::copy_from_slice(chunk)).unwrap();
    }
    assert!(large.on_disk());
    large.finish();
    let (read, largest) = read_segments_in_halves(large.reader()).await;
    assert!(read == body, "the segments hold the body's bytes in order");
    assert_eq!(largest, reader::READ_CHUNK, "file bytes come a read's worth at a time, not as one 3 MiB buffer");
}

#[tokio::test]
async fn bytes_from_a_pipe_follow_the_bytes_from_memory_and_reach_a_live_reader() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let body = pattern(3 << 20);
    let spool = Spool::new(cfg.clone(), 1024, Some(body.len() as u64), true).unwrap();
    assert!(spool.takes_pipe(), "declared, larger than the memory buffer, no window kept");
    let mut reader = spool.reader();
    // The first bytes came through hyper: they are in the write batch when the pipe takes over.
    spool.append(&Bytes::copy_from_slice(&body[..1000])).unwrap();
    let pipe = BodyPipe::new().expect("a 1 MiB pipe on this machine");
    let (mut client, socket) = std::os::unix::net::UnixStream::pair().unwrap();
    socket.set_nonblocking(true).unwrap();
    let sending = std::thread::spawn({
        let rest = body[1000..].to_vec();
        move || std::io::Write::write_all(&mut client, &rest).unwrap()
    });
    let mut at = 1000;
    while at < body.len() {
        let n = match pipe.fill(&socket, body.len() - at) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            Err(error) => panic!("{error}"),
        };
        spool.append_from_pipe(&pipe, n).unwrap();
        at += n;
    }
    sending.join().unwrap();
    // A reader following the writer has heard of every full step before the end is announced.
    let Available::Segment(segment) = reader.available().unwrap() else { panic!("the reader heard of the bytes") };
    assert!(!segment.is_empty());
    spool.finish();
    drop(reader);
    assert_eq!(read_all(spool.reader()).await.unwrap(), body);
    assert_eq!(cfg.metrics.spool_bytes.get(), body.len() as i64, "every byte counted once");
    assert_eq!(cfg.quota.used(), body.len() as u64);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the file is unlinked");
    drop(spool);
    assert_eq!(cfg.quota.used(), 0);

    let unknown_length = Spool::new(cfg.clone(), 1024, None, true).unwrap();
    assert!(!unknown_length.takes_pipe(), "a chunked Tee body keeps its window of chunks: it comes through memory");
    let fits = Spool::new(cfg, 1 << 20, Some(1000), false).unwrap();
    assert!(!fits.takes_pipe(), "a body that fits the memory buffer stays in memory");
}

#[tokio::test]
async fn ended_waits_for_the_end_of_the_body_not_for_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    for complete in [true, false] {
        let spool = Spool::new(config(dir.path(), 0), 1024, None, true).unwrap();
        assert!(spool.is_arriving());
        let waiter = tokio::spawn({
            let spool = spool.clone();
            async move { spool.ended().await }
        });
        spool.append(&Bytes::from(pattern(4096))).unwrap();
        spool.publish();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "published bytes are not the end of the body");
        if complete {
            spool.finish();
        } else {
            spool.abort();
        }
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(ended.is_ok(), complete, "{ended:?}");
        assert!(!spool.is_arriving());
        // Once ended, it says so at once.
        assert_eq!(spool.ended().await.is_ok(), complete);
    }
}

#[test]
fn a_close_job_the_runtime_drops_unrun_still_closes_the_file_and_gives_the_quota_back() {
    // A spool dropped while its runtime shuts down (a task holding it dropped with the runtime) has its close job
    // refused by the blocking pool, which drops it without running it.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = runtime.handle().clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let len = BACKGROUND_CLOSE + 1;
    let spool = runtime.block_on(async {
        let spool = Spool::new(cfg.clone(), 4096, Some(len), false).unwrap();
        spool.append(&Bytes::from(vec![7u8; len as usize])).unwrap();
        spool.finish();
        spool
    });
    runtime.shutdown_background();
    let _context = handle.enter();
    drop(spool);
    assert_eq!(open_files_in(dir.path()), 0, "the file is closed");
    assert_eq!(cfg.quota.used(), 0, "the quota is given back");
    assert_eq!((cfg.metrics.spool_files.get(), cfg.metrics.spool_bytes.get()), (0, 0));
}

/// Writes `chunks` chunks of `chunk` bytes with [`Spool::write`]; the first error, if any.
async fn write_chunks(spool: &Spool, chunk: usize, chunks: usize) -> Result<(), SpoolError> {
    for i in 0..chunks {
        spool.write(&Bytes::from(vec![i as u8; chunk])).await?;
    }
    Ok(())
}

#[tokio::test]
async fn without_room_the_newest_upload_yields_its_space_to_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    let (older, newer) =
        (Spool::new(cfg.clone(), 0, None, false).unwrap(), Spool::new(cfg.clone(), 0, None, false).unwrap());
    write_chunks(&older, 256 << 10, 2).await.unwrap();
    write_chunks(&newer, 256 << 10, 2).await.unwrap();
    assert_eq!(cfg.quota.used(), 1 << 20, "the quota is used up by the two");
    // The older one needs more: the newer one yields, at once, and the older one goes on to the whole quota.
    write_chunks(&older, 256 << 10, 2).await.expect("the older upload has priority");
    older.finish();
    assert_eq!(older.len(), 1 << 20);
    assert!(!newer.can_replay() && !newer.on_disk(), "the newer upload's file is gone");
    let err = newer.write(&Bytes::from_static(b"more")).await.expect_err("the newer upload yielded");
    assert!(matches!(err, SpoolError::QuotaExceeded { .. }), "{err:?}");
    assert_eq!(cfg.metrics.spool_yielded.get(), 1);
    assert_eq!(cfg.metrics.spool_files.get(), 1);
    assert_eq!(cfg.quota.used(), 1 << 20, "only the older upload's bytes are held");
    let body = read_all(older.reader()).await.unwrap();
    assert!(body.chunks(256 << 10).enumerate().all(|(i, c)| c.iter().all(|&b| b == (i % 2) as u8)));
    drop((older, newer));
    assert_eq!(cfg.quota.used(), 0);
}

#[tokio::test]
async fn the_newest_upload_without_room_yields_itself_and_a_complete_body_is_never_taken() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    let complete = Spool::new(cfg.clone(), 0, None, false).unwrap();
    write_chunks(&complete, 256 << 10, 3).await.unwrap();
    complete.finish();
    let newest = Spool::new(cfg.clone(), 0, None, false).unwrap();
    let err = write_chunks(&newest, 256 << 10, 2).await.expect_err("no room for the newest");
    assert!(matches!(err, SpoolError::QuotaExceeded { .. }), "{err:?}");
    assert_eq!(cfg.quota.used(), 768 << 10, "the newest upload's space is given back at once");
    assert_eq!(cfg.quota.pressure.writers(), 0, "neither is registered as writing");
    assert_eq!(read_all(complete.reader()).await.unwrap().len(), 768 << 10, "the complete body is whole");
}

#[tokio::test]
async fn a_tee_upload_being_relayed_gives_up_its_file_and_goes_on_without_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1 << 20);
    let older = Spool::new(cfg.clone(), 0, None, false).unwrap();
    let tee = Spool::new(cfg.clone(), 0, None, true).unwrap();
    let relayed = tokio::spawn(read_all(tee.reader()));
    write_chunks(&older, 256 << 10, 2).await.unwrap();
    write_chunks(&tee, 256 << 10, 2).await.unwrap();
    tee.publish();
    // The attempt relays: it has taken what came so far (bounded: it needs a few turns of this thread).
    for _ in 0..1000 {
        if tee.pace.position() == 512 << 10 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(tee.pace.position(), 512 << 10, "the attempt took the first bytes");
    // The older upload takes the Tee upload's space; the Tee upload goes on, far past the quota, in memory.
    write_chunks(&older, 256 << 10, 2).await.expect("the older upload has priority");
    assert_eq!(tee.relayed_since(), Some(512 << 10));
    assert!(!tee.can_replay() && !tee.on_disk());
    assert_eq!(cfg.metrics.tee_unspooled.get(), 1);
    assert_eq!(cfg.metrics.spool_yielded.get(), 0, "a relayed upload is not refused");
    write_chunks(&tee, 256 << 10, 8).await.expect("a relayed upload takes no spool space");
    tee.finish();
    assert!(tee.reader().next_chunk().await.is_err(), "a second attempt cannot replay the body");
    let body = relayed.await.unwrap().expect("the attempt reads the whole body");
    let expected: Vec<u8> =
        [0u8, 1].iter().chain(&[0, 1, 2, 3, 4, 5, 6, 7]).flat_map(|&b| vec![b; 256 << 10]).collect();
    assert!(body == expected, "the relayed body is byte-exact ({} bytes)", body.len());
    assert_eq!(cfg.quota.used(), 1 << 20, "only the older upload's bytes are held");
}

#[tokio::test]
async fn a_relayed_tee_upload_frees_what_its_attempt_took_at_once_and_reads_the_rest_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0);
    let tee = Spool::new(cfg.clone(), 0, None, true).unwrap();
    let mut reader = tee.reader();
    write_chunks(&tee, 256 << 10, 3).await.unwrap();
    tee.publish();
    let first = reader.next_chunk().await.unwrap().expect("the first bytes");
    assert_eq!(first.len(), 256 << 10, "the attempt took the first chunk as it came");
    assert_eq!(cfg.quota.used(), 768 << 10);

    tee.yield_own(SpoolError::DiskFull).expect("a relayed Tee upload goes on");
    assert_eq!(tee.relayed_since(), Some(768 << 10));
    assert_eq!(cfg.quota.used(), 512 << 10, "the bytes the attempt took are freed at once");
    write_chunks(&tee, 256 << 10, 2).await.expect("the rest of the body is relayed from memory");
    assert_eq!(cfg.quota.used(), 512 << 10, "nothing more goes to disk");
    tee.finish();
    let mut rest = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let expected: Vec<u8> = [1u8, 2, 0, 1].iter().flat_map(|&b| vec![b; 256 << 10]).collect();
    assert!(rest == expected, "the file's rest, then the relayed bytes ({} bytes)", rest.len());
    drop((reader, tee));
    assert_eq!(cfg.quota.used(), 0);
}
