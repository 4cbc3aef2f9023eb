//! `storage.maintenance.uploadpurging`: the daemon abandons uploads started
//! longer ago than `age`, as distribution does, and only reports them with
//! `dryrun`.

mod common;

use common::*;

/// Starts an upload and returns its URL path and id.
fn start_upload(s: &Server) -> (String, String) {
    let r = s.req("POST", "/v2/team/app/blobs/uploads/").send();
    assert_eq!(r.status, 202);
    let path = r.location_path();
    let id = path.rsplit('/').next().unwrap().to_string();
    (path, id)
}

/// Makes an upload look as if it started in 2020 (distribution's format).
fn backdate(s: &Server, id: &str) -> std::path::PathBuf {
    let dir = s
        .root
        .join("docker/registry/v2/repositories/team/app/_uploads")
        .join(id);
    std::fs::write(dir.join("startedat"), "2020-01-02T03:04:05.123456789+01:00").unwrap();
    dir
}

/// A server purging uploads older than an hour, checking every second
/// (set the way operators of registry:2 often do: from the environment).
fn start(dryrun: bool, dir: &TempDir) -> Server {
    let purging = format!("{{enabled: true, age: 1h, interval: 1s, dryrun: {dryrun}}}");
    let env = [(
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING",
        purging.as_str(),
    )];
    Server::start_on(&dir.0.join("data"), "", &env)
}

#[test]
fn stale_uploads_are_purged_and_fresh_ones_kept() {
    if common::s3::on_s3() {
        eprintln!(
            "skipped on S3: backdates an upload and plants one in the data directory on disk"
        );
        return;
    }
    let dir = TempDir::new("purge");
    let s = start(false, &dir);
    let (old, old_id) = start_upload(&s);
    let (fresh, _) = start_upload(&s);
    backdate(&s, &old_id);
    // A crash can leave an upload directory without its start time.
    let orphan = s.root.join(
        "docker/registry/v2/repositories/team/app/_uploads/0f0f0f0f-0000-0000-0000-000000000000",
    );
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("data"), b"partial").unwrap();
    assert!(wait_for(20, || s.req("GET", &old).send().status == 404));
    assert_eq!(s.req("GET", &old).send().code(), "BLOB_UPLOAD_UNKNOWN");
    assert!(wait_for(10, || !orphan.exists()));
    assert_eq!(
        s.req("GET", &fresh).send().status,
        204,
        "a fresh upload stays"
    );
    s.expect_log(&format!("purged upload {old_id} in team/app"));
}

#[test]
fn dryrun_only_reports() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: backdates an upload's startedat on disk");
        return;
    }
    let dir = TempDir::new("purge");
    let s = start(true, &dir);
    let (old, old_id) = start_upload(&s);
    backdate(&s, &old_id);
    let line = format!("would purge upload {old_id} in team/app");
    assert!(
        wait_for(20, || s.log_text().contains(&line)),
        "{}",
        s.log_text()
    );
    assert_eq!(s.req("GET", &old).send().status, 204);
}
