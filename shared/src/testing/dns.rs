//! A real DNS server for tests (UDP on 127.0.0.1, a random port), answering a small
//! fixed zone under `example.test`:
//!
//! | name | records |
//! |---|---|
//! | `www.example.test` | A 192.0.2.10, A 192.0.2.11, AAAA 2001:db8::10 |
//! | `alias.example.test` | CNAME www.example.test |
//! | `example.test` | MX 10 mx1.example.test, MX 20 mx2.example.test, TXT "v=spf1 " "-all", NS ns1.example.test |
//! | `private.example.test` | A 10.0.0.5 |
//! | [`DNS_SLOW_NAME`] | A 192.0.2.20, answered after the server's delay |
//!
//! Other types of a known name: an empty answer (NOERROR); other names: NXDOMAIN.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The name answered only after the server's delay.
pub const DNS_SLOW_NAME: &str = "slow.example.test";

/// A running test DNS server; stops when dropped.
pub struct TestDnsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(format!("{text}.")).unwrap_or_default()
}

/// The records of `qname` (lower-case, no trailing dot), or `None` for NXDOMAIN.
fn zone(qname: &str) -> Option<Vec<RData>> {
    Some(match qname {
        "www.example.test" => vec![
            RData::A(A(Ipv4Addr::new(192, 0, 2, 10))),
            RData::A(A(Ipv4Addr::new(192, 0, 2, 11))),
            RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10))),
        ],
        "alias.example.test" => vec![RData::CNAME(CNAME(name("www.example.test")))],
        "example.test" => vec![
            RData::MX(MX::new(10, name("mx1.example.test"))),
            RData::MX(MX::new(20, name("mx2.example.test"))),
            RData::TXT(TXT::new(vec!["v=spf1 ".into(), "-all".into()])),
            RData::NS(NS(name("ns1.example.test"))),
        ],
        "private.example.test" => vec![RData::A(A(Ipv4Addr::new(10, 0, 0, 5)))],
        DNS_SLOW_NAME => vec![RData::A(A(Ipv4Addr::new(192, 0, 2, 20)))],
        _ => return None,
    })
}

fn answer(query: &[u8]) -> Option<(Vec<u8>, bool)> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let qname = question.name().to_ascii().to_ascii_lowercase();
    let qname = qname.strip_suffix('.').unwrap_or(&qname).to_owned();
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_query(question.clone());
    match zone(&qname) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(records) => {
            for data in records {
                let wanted = question.query_type();
                let is_cname = data.record_type() == RecordType::CNAME;
                if data.record_type() == wanted || (is_cname && wanted != RecordType::CNAME) {
                    response.add_answer(Record::from_rdata(question.name().clone(), 60, data));
                }
            }
        }
    }
    let slow = qname == DNS_SLOW_NAME;
    Some((response.to_vec().ok()?, slow))
}

impl TestDnsServer {
    /// Starts the server; [`DNS_SLOW_NAME`] is answered after `slow_delay`.
    pub async fn start(slow_delay: Duration) -> std::io::Result<Self> {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let addr = socket.local_addr()?;
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let Some((reply, slow)) = answer(&buf[..len]) else {
                    continue;
                };
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    if slow {
                        tokio::time::sleep(slow_delay).await;
                    }
                    let _ = socket.send_to(&reply, peer).await;
                });
            }
        });
        Ok(TestDnsServer { addr, task })
    }

    /// Where it listens (`--dns-server` / `VALIDATOR_DNS_SERVER`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
