//! A private anvil dev chain per test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        // Anvil binds port 0 itself and prints the port it got: no window in
        // which another test's listener can take a port we picked (a probe that
        // connected to someone else's listener once called a dead anvil ready).
        let mut child = Command::new(&path)
            .args(["--port", "0", "--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(Error::Io(std::io::Error::other("anvil has no stdout")));
        };
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // Anvil logs every request on stdout; the thread keeps the pipe drained.
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if let Some(tx) = &port_tx
                    && let Some(port) = listening_port(&line)
                {
                    let _ = tx.send(port);
                    port_tx = None;
                }
            }
        });
        match port_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => Ok(TestChain { child, port }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(Error::Io(std::io::Error::other(
                    "anvil did not report a listening port within 20 s",
                )))
            }
        }
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

    /// The guardian of contracts deployed by [`TestChain::deploy_funded`] (dev key 9,
    /// as in `.env.example`).
    pub fn guardian(&self) -> crate::eth::PrivateKey {
        self.key(GUARDIAN_KEY)
    }

    /// Deploys the rewards contract with dev key 0 as operator, dev key 9 as
    /// guardian, [`TEST_CHALLENGE_BLOCKS`] and [`TEST_UNBONDING_SECONDS`], funds it
    /// with `funding`, and returns its address.
    pub async fn deploy_funded(&self, funding: crate::eth::U256) -> Result<crate::eth::Address> {
        self.deploy_custody(
            funding,
            crate::eth::Custody {
                operator: self.key(0).address(),
                guardian: self.guardian().address(),
                challenge_blocks: TEST_CHALLENGE_BLOCKS,
                unbonding_seconds: TEST_UNBONDING_SECONDS,
            },
        )
        .await
    }

    /// Deploys the rewards contract (sent by dev key 0) with `custody`, funds it
    /// with `funding`, and returns its address.
    pub async fn deploy_custody(
        &self,
        funding: crate::eth::U256,
        custody: crate::eth::Custody,
    ) -> Result<crate::eth::Address> {
        let client = crate::eth::signer_client(&self.rpc_url(), &self.key(0))
            .await
            .map_err(chain_error)?;
        let address = crate::eth::deploy(client.clone(), custody)
            .await
            .map_err(chain_error)?;
        if !funding.is_zero() {
            crate::eth::fund(&client, address, funding)
                .await
                .map_err(chain_error)?;
        }
        Ok(address)
    }

    /// Mines `blocks` empty blocks at once (`anvil_mine`): an auto-mining chain
    /// otherwise only moves with transactions, and a root waits blocks to mature.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        let client = crate::eth::read_client(&self.rpc_url()).map_err(chain_error)?;
        let _: serde_json::Value =
            crate::eth::raw_request(&client, "anvil_mine", [format!("0x{blocks:x}")])
                .await
                .map_err(chain_error)?;
        Ok(())
    }

    /// Mines past the challenge window of every root committed so far on a
    /// contract deployed by [`TestChain::deploy_funded`].
    pub async fn mature(&self) -> Result<()> {
        self.mine(TEST_CHALLENGE_BLOCKS).await
    }

    /// Moves the chain's clock `seconds` ahead and mines one block with it
    /// (`evm_increaseTime`): unbonding counts block timestamps, not blocks.
    pub async fn advance_time(&self, seconds: u64) -> Result<()> {
        let client = crate::eth::read_client(&self.rpc_url()).map_err(chain_error)?;
        let _: serde_json::Value = crate::eth::raw_request(&client, "evm_increaseTime", [seconds])
            .await
            .map_err(chain_error)?;
        self.mine(1).await
    }
}

/// The dev key that guards test contracts (anvil's last account, as in
/// `.env.example`).
pub const GUARDIAN_KEY: usize = 9;

/// The challenge window of test contracts: short, since tests mine it away.
pub const TEST_CHALLENGE_BLOCKS: u64 = 5;

/// The unbonding delay of test contracts: an hour, which tests skip with
/// [`TestChain::advance_time`].
pub const TEST_UNBONDING_SECONDS: u64 = 3600;

/// The port of anvil's `Listening on 127.0.0.1:PORT` line.
fn listening_port(line: &str) -> Option<u16> {
    line.trim()
        .strip_prefix("Listening on ")?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

fn chain_error(err: crate::eth::EthError) -> Error {
    Error::Io(std::io::Error::other(err.to_string()))
}

impl Drop for TestChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn the_port_is_read_from_anvils_listening_line() {
        assert_eq!(listening_port("Listening on 127.0.0.1:41231"), Some(41231));
        assert_eq!(
            listening_port("  Listening on 127.0.0.1:8545\r"),
            Some(8545)
        );
        assert_eq!(listening_port("Available Accounts"), None);
        assert_eq!(listening_port("Listening on 127.0.0.1:notaport"), None);
    }
}
