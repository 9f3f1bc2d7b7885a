//! `s3://` sources and sinks against a real S3 server (SeaweedFS), checked with an
//! independent client (boto3): S3 <-> S3 <-> folder give the bytes a folder run
//! gives; listing past a page; shards; multipart; kill and resume; wrong
//! credentials; a missing bucket; a public bucket; an object changed mid-read.

use crate::common::s3::{self, ACCESS_KEY, SECRET_KEY, Weed};
use crate::common::{Env, run, testdata};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".dicom-deid"))
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !err.contains(SECRET_KEY) && !err.contains(ACCESS_KEY),
        "a credential reached stderr: {err}"
    );
    err
}

fn summary(report: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(report).unwrap();
    assert!(!text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY));
    let last = text.lines().last().unwrap();
    serde_json::from_str::<serde_json::Value>(last).unwrap()["summary"].clone()
}

/// A multi-frame CT of about `mib` MiB, from a real sample with its Pixel Data
/// replaced by a pattern.
fn big_ct(path: &Path, mib: usize) {
    let mut obj = dicom_object::open_file(testdata("dicom/ct_explicit_le.dcm")).unwrap();
    let frames = mib * 4; // 512 x 512 x 2 bytes = 0.5 MiB a frame
    let us = |t, v: u16| DataElement::new(Tag(0x0028, t), VR::US, PrimitiveValue::from(v));
    obj.put(us(0x0010, 512));
    obj.put(us(0x0011, 512));
    obj.put(us(0x0100, 16));
    obj.put(us(0x0101, 16));
    obj.put(us(0x0102, 15));
    obj.put(us(0x0002, 1));
    obj.put(DataElement::new(
        Tag(0x0028, 0x0008),
        VR::IS,
        PrimitiveValue::from(frames.to_string()),
    ));
    let pixels: Vec<u8> = (0..frames * 512 * 512 * 2)
        .map(|i| (i % 251) as u8)
        .collect();
    obj.put(DataElement::new(
        Tag(0x7FE0, 0x0010),
        VR::OW,
        PrimitiveValue::from(pixels),
    ));
    obj.write_to_file(path).unwrap();
}

fn run_s3(weed: &Weed, env: &Env, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = weed.command(&env.path("state"));
    c.arg("run");
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

#[test]
fn s3_outputs_equal_folder_outputs_every_way_round() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 1);
    let input = testdata("dicom");
    // The reference: folder to folder.
    let local = env.path("local");
    let o = run(&[&"run", &input, &"--out", &local, &"--key-file", &key]);
    assert_eq!(o.status.code(), Some(1), "some samples are quarantined");
    let expected = files_under(&local);
    assert!(expected.len() >= 8, "{}", expected.len());

    // Folder to bucket.
    let report = env.path("r1.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &input,
            &"--out",
            &"s3://out/ways/a",
            &"--key-file",
            &key,
            &"--report",
            &report,
        ],
    );
    ok(&o);
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&report);
    assert_eq!(s["written"].as_u64(), Some(expected.len() as u64));
    assert_eq!(s["public_readable"], serde_json::json!([]));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("\"output\":\"s3://out/ways/a/"), "{text}");
    let got = env.path("got-a");
    weed.download("out", "ways/a", &got);
    assert_eq!(files_under(&got), expected, "folder -> bucket");

    // Bucket to bucket, and bucket to folder, from the same inputs uploaded.
    weed.upload_dir(&input, "src", "ways");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/ways",
            &"--out",
            &"s3://out/ways/b",
            &"--key-file",
            &key,
        ],
    );
    ok(&o);
    let got = env.path("got-b");
    weed.download("out", "ways/b", &got);
    assert_eq!(files_under(&got), expected, "bucket -> bucket");
    let folder = env.path("from-bucket");
    let o = run_s3(
        weed,
        &env,
        &[&"s3://src/ways", &"--out", &folder, &"--key-file", &key],
    );
    ok(&o);
    assert_eq!(files_under(&folder), expected, "bucket -> folder");

    // A second run skips what the ledger (in the state directory) shows done.
    let report = env.path("r2.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/ways",
            &"--out",
            &"s3://out/ways/b",
            &"--key-file",
            &key,
            &"--report",
            &report,
        ],
    );
    ok(&o);
    let s = summary(&report);
    assert_eq!(s["written"].as_u64(), Some(0));
    assert_eq!(s["skipped_unchanged"].as_u64(), Some(expected.len() as u64));
    // And with --no-resume it rewrites nothing different: equal objects count as
    // written, nothing is overwritten.
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/ways",
            &"--out",
            &"s3://out/ways/b",
            &"--key-file",
            &key,
            &"--no-resume",
        ],
    );
    ok(&o);
    assert_eq!(o.status.code(), Some(1), "only the quarantined fail");
    // A different key gives different objects under the same mirror names: they
    // are refused, never overwritten.
    let other = env.key("k2", 2);
    let report = env.path("r3.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/ways",
            &"--out",
            &"s3://out/ways/m",
            &"--key-file",
            &key,
            &"--layout",
            &"mirror",
        ],
    );
    ok(&o);
    let before = weed.keys("out", "ways/m");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/ways",
            &"--out",
            &"s3://out/ways/m",
            &"--key-file",
            &other,
            &"--layout",
            &"mirror",
            &"--report",
            &report,
            &"--state-dir",
            &env.path("st2"),
        ],
    );
    ok(&o);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("never overwritten"), "{text}");
    let got = env.path("got-m");
    weed.download("out", "ways/m", &got);
    let mirror_ref = env.path("mirror-ref");
    run(&[
        &"run",
        &input,
        &"--out",
        &mirror_ref,
        &"--key-file",
        &key,
        &"--layout",
        &"mirror",
    ]);
    assert_eq!(files_under(&got), files_under(&mirror_ref));
    assert_eq!(weed.keys("out", "ways/m"), before);
}

#[test]
fn s3_listing_past_a_page_and_shards_union_equals_one_run() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 3);
    // 1,050 objects: past the 1,000-key page of ListObjectsV2.
    weed.py_ok(&format!(
        "body = open({:?}, 'rb').read()\n\
         from concurrent.futures import ThreadPoolExecutor\n\
         def put(i): s3.put_object(Bucket='src', Key='many/d%02d/f%04d.dcm' % (i % 7, i), Body=body)\n\
         list(ThreadPoolExecutor(16).map(put, range(1050)))\n",
        testdata("dicom/mr_implicit_le.dcm").display().to_string()
    ));
    let report = env.path("all.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/many",
            &"--out",
            &"s3://out/many-all",
            &"--key-file",
            &key,
            &"--layout",
            &"mirror",
            &"--report",
            &report,
        ],
    );
    ok(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(summary(&report)["written"].as_u64(), Some(1050));
    let all = weed.keys("out", "many-all");
    assert_eq!(all.len(), 1050);

    let mut reports = Vec::new();
    for i in 0..3 {
        let r = env.path(&format!("shard{i}.jsonl"));
        let o = run_s3(
            weed,
            &env,
            &[
                &"s3://src/many",
                &"--out",
                &"s3://shards/many",
                &"--key-file",
                &key,
                &"--layout",
                &"mirror",
                &"--report",
                &r,
                &"--shard",
                &format!("{i}/3"),
            ],
        );
        ok(&o);
        let n = summary(&r)["written"].as_u64().unwrap();
        assert!(n > 250 && n < 450, "shard {i} wrote {n}");
        reports.push(r);
    }
    let shards = weed.keys("shards", "many");
    let strip = |v: &[String], p: &str| -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|k| k[p.len()..].to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(strip(&shards, "many/"), strip(&all, "many-all/"));
    // Byte for byte: the stores' checksums of single-part objects are their MD5.
    let etags = |bucket: &str, prefix: &str| {
        weed.py_ok(&format!(
            "for p in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}/'):\n\
             \x20   for o in p.get('Contents', []): print(o['Key'][len('{prefix}/'):], o['ETag'])\n"
        ))
        .lines()
        .map(String::from)
        .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(etags("shards", "many"), etags("out", "many-all"));
    // The merged shard reports count what one run counts.
    let mut c = std::process::Command::new(crate::common::BIN);
    c.args(["report", "merge"]).args(&reports);
    let merged = c.output().unwrap();
    let text = String::from_utf8_lossy(&merged.stdout);
    let s: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(s["summary"]["written"].as_u64(), Some(1050));
}

#[test]
fn a_64_mib_object_goes_through_multipart_and_nothing_is_left_behind() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 4);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    big_ct(&input.join("big.dcm"), 64);
    let local = env.path("local");
    let o = run(&[&"run", &input, &"--out", &local, &"--key-file", &key]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let expected = files_under(&local);
    assert_eq!(expected.len(), 1);
    assert!(expected.values().next().unwrap().len() > 64 << 20);

    let o = run_s3(
        weed,
        &env,
        &[&input, &"--out", &"s3://out/big/a", &"--key-file", &key],
    );
    ok(&o);
    assert_eq!(o.status.code(), Some(0));
    let got = env.path("got");
    weed.download("out", "big/a", &got);
    assert_eq!(files_under(&got), expected);
    // Bucket to bucket: the 64 MiB object read in windows, written in parts.
    weed.upload_dir(&input, "src", "big");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/big",
            &"--out",
            &"s3://out/big/b",
            &"--key-file",
            &key,
        ],
    );
    ok(&o);
    assert_eq!(o.status.code(), Some(0));
    let got = env.path("got-b");
    weed.download("out", "big/b", &got);
    assert_eq!(files_under(&got), expected);
    assert_eq!(weed.uploads("out", "big"), 0, "no multipart upload left");
    assert!(
        weed.keys("out", "big")
            .iter()
            .all(|k| !k.contains(".dicom-deid")),
        "no temporary object left"
    );
}

#[test]
fn a_killed_s3_run_resumes_to_the_same_objects_and_leaves_nothing_behind() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 5);
    let input = env.path("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..3 {
        big_ct(&input.join(format!("big{i}.dcm")), 40);
    }
    for (i, f) in [
        "ct_explicit_le.dcm",
        "mr_implicit_le.dcm",
        "rtdose_multiframe.dcm",
    ]
    .iter()
    .cycle()
    .take(60)
    .enumerate()
    {
        std::fs::copy(
            testdata(&format!("dicom/{f}")),
            input.join(format!("s{i:03}.dcm")),
        )
        .unwrap();
    }
    weed.upload_dir(&input, "src", "kill");
    let args = |out: &str| -> Vec<String> {
        vec![
            "run".into(),
            "s3://src/kill".into(),
            "--out".into(),
            out.into(),
            "--key-file".into(),
            key.display().to_string(),
            "--layout".into(),
            "mirror".into(),
            "--jobs".into(),
            "1".into(),
        ]
    };
    let clean = weed
        .command(&env.path("state"))
        .args(args("s3://out/kill-clean"))
        .output()
        .unwrap();
    ok(&clean);
    assert_eq!(clean.status.code(), Some(0));

    // Killed while a multipart upload is in progress.
    let mut child = weed
        .command(&env.path("state"))
        .args(args("s3://out/kill-run"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // One poller process (boto3 starts slowly) kills the run at its first upload.
    weed.py_ok(&format!(
        "import os, signal, time\n\
         end = time.time() + 60\n\
         while time.time() < end and not s3.list_multipart_uploads(Bucket='out', Prefix='kill-run/').get('Uploads'):\n\
         \x20   time.sleep(0.01)\n\
         os.kill({}, signal.SIGKILL)\n",
        child.id()
    ));
    let _ = child.kill();
    child.wait().unwrap();
    assert!(
        weed.uploads("out", "kill-run") > 0,
        "the run was killed mid-upload (test premise)"
    );
    let again = weed
        .command(&env.path("state"))
        .args(args("s3://out/kill-run"))
        .output()
        .unwrap();
    let err = ok(&again);
    assert_eq!(again.status.code(), Some(0), "{err}");
    assert!(err.contains("unfinished uploads"), "{err}");
    assert_eq!(
        weed.uploads("out", "kill-run"),
        0,
        "orphaned upload aborted"
    );
    assert!(
        weed.keys("out", "kill-run")
            .iter()
            .all(|k| !k.contains(".dicom-deid"))
    );
    let (a, b) = (env.path("a"), env.path("b"));
    weed.download("out", "kill-clean", &a);
    weed.download("out", "kill-run", &b);
    assert_eq!(files_under(&a).len(), 63);
    assert!(
        files_under(&a) == files_under(&b),
        "resumed run differs from a clean run"
    );
}

#[test]
fn wrong_credentials_and_a_missing_bucket_fail_fast_and_say_why() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 6);
    let out = env.path("out");
    let o = weed
        .command(&env.path("state"))
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-value")
        .args(["run", "s3://src/x", "--out"])
        .arg(&out)
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    let err = ok(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("access denied to bucket `src`"), "{err}");
    assert!(!err.contains("not-the-secret-value"), "{err}");
    assert!(!out.exists(), "nothing written");

    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://no-such-bucket/x",
            &"--out",
            &out,
            &"--key-file",
            &key,
        ],
    );
    let err = ok(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bucket `no-such-bucket` does not exist"),
        "{err}"
    );
    let o = run_s3(
        weed,
        &env,
        &[
            &testdata("dicom"),
            &"--out",
            &"s3://no-such-bucket/y",
            &"--key-file",
            &key,
        ],
    );
    let err = ok(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no-such-bucket"), "{err}");
}

#[test]
fn a_publicly_readable_bucket_is_reported_and_refused_when_asked() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 7);
    // An object-level public-read ACL is ignored by SeaweedFS: a bucket policy it is.
    weed.py_ok(
        "s3.put_bucket_policy(Bucket='public', Policy=json.dumps({'Version': '2012-10-17', \
         'Statement': [{'Effect': 'Allow', 'Principal': '*', 'Action': ['s3:GetObject', 's3:ListBucket'], \
         'Resource': ['arn:aws:s3:::public', 'arn:aws:s3:::public/*']}]}))",
    );
    let input = testdata("dicom/ct_explicit_le.dcm");
    let o = run_s3(
        weed,
        &env,
        &[
            &input,
            &"--out",
            &"s3://public/x",
            &"--key-file",
            &key,
            &"--require-private",
        ],
    );
    let err = ok(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("can be read without credentials"), "{err}");
    assert!(weed.keys("public", "x").is_empty(), "nothing written");

    let report = env.path("r.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &input,
            &"--out",
            &"s3://public/x",
            &"--key-file",
            &key,
            &"--report",
            &report,
        ],
    );
    let err = ok(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: output s3://public/x can be read without credentials"));
    assert_eq!(
        summary(&report)["public_readable"],
        serde_json::json!(["s3://public/x"])
    );
    // The same probe on a source: this tool is often the first to look at a bucket.
    let report = env.path("r2.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://public/x",
            &"--out",
            &env.path("o2"),
            &"--key-file",
            &key,
            &"--report",
            &report,
        ],
    );
    let err = ok(&o);
    assert!(
        err.contains("warning: input s3://public/x can be read without credentials"),
        "{err}"
    );
    assert_eq!(
        summary(&report)["public_readable"],
        serde_json::json!(["s3://public/x"])
    );
}

#[test]
fn an_object_rewritten_after_listing_reads_as_changed_never_mixed() {
    use dicom_deid::s3::{Bucket, Endpoint, S3Url, input::S3Input, list};
    use std::io::Read;
    let Some(weed) = s3::server() else { return };
    weed.py_ok("s3.put_object(Bucket='src', Key='changed/a.dcm', Body=b'A' * 300000)");
    let url = S3Url::parse("s3://src/changed").unwrap().unwrap();
    let bucket = Bucket::open(
        &url,
        &Endpoint {
            url: Some(weed.endpoint.clone()),
            credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
        },
    )
    .unwrap();
    let listed: Vec<_> = list::objects(&bucket)
        .map(|i| match i {
            list::Item::Object(l) => l,
            list::Item::Error(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(listed.len(), 1);
    let (mut input, stamp) = S3Input::open(&bucket, listed[0].clone());
    let mut first = vec![0u8; 1000];
    input.read_exact(&mut first).unwrap();
    // Rewritten between the first window and the rest.
    weed.py_ok("s3.put_object(Bucket='src', Key='changed/a.dcm', Body=b'B' * 300000)");
    let mut rest = Vec::new();
    let r = input.read_to_end(&mut rest);
    assert!(r.is_err(), "read past the first window must fail");
    assert!(!rest.contains(&b'B'), "no byte of the new version");
    assert_ne!(
        input.stamp().unwrap(),
        stamp,
        "the input reports itself changed"
    );
}

#[test]
fn check_reads_a_bucket_as_it_reads_a_folder() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 8);
    let input = testdata("dicom");
    let local = env.path("local");
    run(&[&"run", &input, &"--out", &local, &"--key-file", &key]);
    let o = run_s3(
        weed,
        &env,
        &[&input, &"--out", &"s3://out/chk/good", &"--key-file", &key],
    );
    ok(&o);
    let check = |target: &dyn AsRef<std::ffi::OsStr>, report: &Path| {
        let mut c = weed.command(&env.path("state"));
        c.arg("check").arg(target).arg("--report").arg(report);
        c.output().unwrap()
    };
    let (rl, rb) = (env.path("local.json"), env.path("bucket.json"));
    let l = check(&local, &rl);
    let b = check(&"s3://out/chk/good", &rb);
    ok(&b);
    assert_eq!(
        b.status.code(),
        l.status.code(),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    let findings = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("summary").is_none())
            .map(|v| v["findings"].to_string())
            .collect();
        v.sort();
        v
    };
    let bucket_findings = findings(&rb);
    assert_eq!(bucket_findings.len(), files_under(&local).len());
    assert_eq!(bucket_findings, findings(&rl));
    // An original put into the bucket is found.
    weed.upload_dir(&testdata("dicom"), "out", "chk/bad");
    let bad = check(&"s3://out/chk/bad", &env.path("bad.json"));
    ok(&bad);
    assert_eq!(bad.status.code(), Some(1));
    let text = std::fs::read_to_string(env.path("bad.json")).unwrap();
    assert!(
        text.contains("\"file\":\"s3://out/chk/bad/"),
        "{}",
        &text[..300.min(text.len())]
    );
    assert!(
        text.contains("not-removed"),
        "original identifiers are found"
    );
}

/// An object key is any string. `prefix//x`, `prefix/../x` and `prefix/a/../../x`
/// were joined to the output and quarantine folders as paths: under the mirror
/// layout a bucket's keys could write (or copy a failed original) outside them.
/// Keys now map to paths that stay below their root (`..` spelled `%2E%2E`; the
/// unit test `object_keys_never_climb_out_of_their_root` covers the keys this
/// server refuses to store), and a failed object's `--quarantine-copy` (local
/// inputs only before) is the listed version, copied whole.
#[test]
fn object_keys_with_dot_dot_or_double_slashes_stay_inside_the_output() {
    let Some(weed) = s3::server() else { return };
    let env = Env::new();
    let key = env.key("k", 3);
    let ct = testdata("dicom/ct_explicit_le.dcm");
    let bad = testdata("bad/mr_truncated.dcm");
    // AWS S3 stores such keys as they are; SeaweedFS refuses `..` segments
    // (InvalidRequest) and may fold `//`, so each is tried and what it kept is listed.
    let put = |file: &Path, k: &str| {
        weed.py(&format!(
            "s3.upload_file({f:?}, 'src', {k:?})",
            f = file.display().to_string()
        ))
        .status
        .success()
    };
    let (mut cts, mut bads) = (0, 0);
    for (file, k) in [
        (&ct, "esc/../up.dcm"),
        (&ct, "esc//abs.dcm"),
        (&bad, "esc/a/../../q.dcm"),
        (&bad, "esc//q.dcm"),
    ] {
        if put(file, k) {
            *(if file == &ct { &mut cts } else { &mut bads }) += 1;
        }
    }
    assert!(
        cts >= 1 && bads >= 1,
        "the server keeps some of the odd keys"
    );
    let listed = weed.keys("src", "esc");
    let root = env.path("root");
    let out = root.join("out");
    let q = root.join("q");
    let report = env.path("r.jsonl");
    let o = run_s3(
        weed,
        &env,
        &[
            &"s3://src/esc",
            &"--out",
            &out,
            &"--key-file",
            &key,
            &"--layout",
            &"mirror",
            &"--quarantine",
            &q,
            &"--quarantine-copy",
            &"--report",
            &report,
        ],
    );
    ok(&o);
    assert_eq!(o.status.code(), Some(1), "the truncated MR fails");
    // Nothing lands beside the output and quarantine folders.
    let mut top: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["out", "q"], "keys listed: {listed:?}");
    let written: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path().strip_prefix(&out).unwrap().to_path_buf())
        .collect();
    assert_eq!(written.len(), cts, "{written:?} from {listed:?}");
    for w in &written {
        assert!(
            w.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{w:?}"
        );
    }
    // The failed object's original is copied whole, inside the quarantine folder.
    let copies: Vec<_> = walkdir::WalkDir::new(q.join("files"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(copies.len(), bads, "{copies:?}");
    assert_eq!(
        std::fs::read(&copies[0]).unwrap(),
        std::fs::read(&bad).unwrap()
    );
    let manifest = std::fs::read_to_string(q.join("manifest.jsonl")).unwrap();
    assert!(manifest.contains("\"copy\":"), "{manifest}");
}
