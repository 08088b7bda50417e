//! A tiny static DNS server (A records) for loopback runs without the lab's
//! resolver: `matador lab-sim dns --listen 127.0.0.1:PORT --record name=ip`.

use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};
use std::collections::BTreeMap;
use std::net::IpAddr;
use tokio::net::UdpSocket;

/// Builds the answer to one query; `None` for unparseable input.
pub fn answer(query: &[u8], zone: &BTreeMap<String, IpAddr>) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    let mut r = Packet::new_reply(q.id());
    r.set_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED);
    let mut found = false;
    for question in &q.questions {
        r.questions.push(question.clone());
        let name = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Some(IpAddr::V4(ip)) = zone.get(&name) {
            found = true;
            if question.qtype == QTYPE::TYPE(TYPE::A) {
                r.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    60,
                    RData::A(A {
                        address: u32::from(*ip),
                    }),
                ));
            }
        }
    }
    if !found {
        *r.rcode_mut() = RCODE::NameError;
    }
    r.build_bytes_vec().ok()
}

/// Serves the zone on `sock` forever.
pub async fn serve(sock: UdpSocket, zone: BTreeMap<String, IpAddr>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(resp) = answer(&buf[..n], &zone) {
            let _ = sock.send_to(&resp, from).await;
        }
    }
}
