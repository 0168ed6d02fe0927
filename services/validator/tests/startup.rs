//! The compiled `validator` binary: key generation, start-up and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use overlaps_shared::testing::{ServiceProcess, assert_refuses_config, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_validator");
const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn key_file() -> String {
    let path = std::env::temp_dir().join(format!("overlaps-test-{}.key", rand_suffix()));
    let path = path.to_str().unwrap().to_owned();
    let mut keygen = ServiceProcess::spawn(BIN, &["keygen", "--key-file", &path], &[]).unwrap();
    let status = keygen
        .wait_exit(Duration::from_secs(10))
        .unwrap()
        .expect("keygen finished");
    assert!(status.success(), "{:?}", keygen.output());
    path
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn keygen_writes_a_private_key_file_and_refuses_to_overwrite_it() {
    let path = key_file();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut again = ServiceProcess::spawn(BIN, &["keygen", "--key-file", &path], &[]).unwrap();
    let status = again.wait_exit(Duration::from_secs(10)).unwrap().unwrap();
    assert!(!status.success());
    assert!(again.output().join("\n").contains("already exists"));
    std::fs::remove_file(path).unwrap();
}

#[test]
fn starts_without_a_hub_keeps_retrying_and_stops_on_sigterm_within_5s() {
    let path = key_file();
    // Nothing listens there: the node retries with backoff and still stops promptly.
    let hub = format!("ws://127.0.0.1:{}/ws/validator", free_port().unwrap());
    let mut node = ServiceProcess::spawn(
        BIN,
        &["run"],
        &[
            ("VALIDATOR_KEY_FILE", &path),
            ("HUB_URL", &hub),
            ("PAYOUT_ADDRESS", PAYOUT),
        ],
    )
    .unwrap();
    assert!(
        node.wait_ready(Duration::from_secs(30)).is_some(),
        "{:?}",
        node.output()
    );
    assert!(
        node.wait_for_line(Duration::from_secs(10), |l| l.contains("reconnecting"))
            .is_some()
    );
    let (status, _) = node
        .terminate(Duration::from_secs(5))
        .unwrap()
        .expect("stopped in time");
    assert!(status.success(), "{:?}", node.output());
    // The receipt file was made next to the key.
    std::fs::remove_file(format!("{path}.receipts")).unwrap();
    std::fs::remove_file(path).unwrap();
}

#[test]
fn refuses_a_receipts_file_it_cannot_write() {
    let path = key_file();
    assert_refuses_config(
        BIN,
        &["run"],
        &[
            ("VALIDATOR_KEY_FILE", &path),
            ("PAYOUT_ADDRESS", PAYOUT),
            (
                "VALIDATOR_RECEIPTS_FILE",
                "/nonexistent-dir/validator.receipts",
            ),
        ],
        "VALIDATOR_RECEIPTS_FILE",
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn refuses_a_hub_url_that_is_not_a_websocket() {
    let path = key_file();
    assert_refuses_config(
        BIN,
        &["run"],
        &[
            ("VALIDATOR_KEY_FILE", &path),
            ("PAYOUT_ADDRESS", PAYOUT),
            ("HUB_URL", "http://127.0.0.1:8080"),
        ],
        "HUB_URL",
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn refuses_a_payout_address_with_a_bad_checksum() {
    let path = key_file();
    assert_refuses_config(
        BIN,
        &["run"],
        &[
            ("VALIDATOR_KEY_FILE", &path),
            (
                "PAYOUT_ADDRESS",
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            ),
        ],
        "PAYOUT_ADDRESS",
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn stops_cleanly_on_sigterm_after_its_log_reader_is_gone() {
    use std::io::Read;
    let path = key_file();
    let hub = format!("ws://127.0.0.1:{}/ws/validator", free_port().unwrap());
    // Ctrl-C in a terminal also stops whatever reads the logs: every later line then
    // fails to be written, which must not turn into a panic.
    let mut node = std::process::Command::new(BIN)
        .args([
            "run",
            "--key-file",
            &path,
            "--hub-url",
            &hub,
            "--payout-address",
            PAYOUT,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    node.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(node.stdout.take());
    drop(node.stderr.take());
    // Reconnection attempts keep logging into the closed pipe meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        node.try_wait().unwrap().is_none(),
        "the node died with its log reader"
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    std::fs::remove_file(format!("{path}.receipts")).unwrap();
    std::fs::remove_file(path).unwrap();
}
