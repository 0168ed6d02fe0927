//! A private anvil dev chain per test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use crate::{Error, Result};

/// The anvil binary that `npm install` in `shared/contracts` installs.
pub fn anvil_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// A private anvil dev chain for one test, on a free port; killed on drop.
pub struct TestChain {
    child: Child,
    port: u16,
}

impl std::fmt::Debug for TestChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestChain")
            .field("port", &self.port)
            .finish()
    }
}

impl TestChain {
    /// Starts anvil (auto-mining each transaction) and waits until it answers.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts anvil with extra arguments (e.g. `--no-mining`).
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let path = anvil_path();
        if !path.exists() {
            return Err(Error::Io(std::io::Error::other(format!(
                "{} is missing: run `npm install` in shared/contracts (./run.sh test does)",
                path.display()
            ))));
        }
        // A port taken between free_port and anvil's bind makes anvil exit: retry.
        for _ in 0..5 {
            let port = free_port()?;
            let child = Command::new(&path)
                .args([
                    "--port",
                    &port.to_string(),
                    "--host",
                    "127.0.0.1",
                    "--silent",
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut chain = TestChain { child, port };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = chain.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(chain);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = chain.child.kill();
        }
        Err(Error::Io(std::io::Error::other("anvil did not start")))
    }

    /// The JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Dev key `i` (0 is the dev operator), funded with 10 000 ETH by anvil.
    pub fn key(&self, i: usize) -> crate::eth::PrivateKey {
        match crate::eth::DEV_PRIVATE_KEYS[i % crate::eth::DEV_PRIVATE_KEYS.len()].parse() {
            Ok(key) => key,
            Err(err) => panic!("dev key {i}: {err}"),
        }
    }

    /// Deploys the rewards contract with dev key 0 as operator, funds it with
    /// `funding`, and returns its address.
    pub async fn deploy_funded(&self, funding: crate::eth::U256) -> Result<crate::eth::Address> {
        let client = crate::eth::signer_client(&self.rpc_url(), &self.key(0))
            .await
            .map_err(|err| Error::Io(std::io::Error::other(err.to_string())))?;
        let address = crate::eth::deploy(client.clone(), self.key(0).address())
            .await
            .map_err(|err| Error::Io(std::io::Error::other(err.to_string())))?;
        if !funding.is_zero() {
            crate::eth::fund(&client, address, funding)
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err.to_string())))?;
        }
        Ok(address)
    }
}

impl Drop for TestChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
