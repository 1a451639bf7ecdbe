//! `llmpool.v1` only grows: every message field (number, type, label), enum value and RPC
//! of the published snapshot (`tests/fixtures/llmpool-v1.txt`) is still in the descriptor,
//! unchanged, so clients generated from an older .proto keep working. Adding is free;
//! after adding, refresh the snapshot with `LLM_POOL_BLESS_PROTO=1 cargo test --test
//! proto_compat`.

use std::collections::BTreeSet;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

const SNAPSHOT: &str = "tests/fixtures/llmpool-v1.txt";

fn messages(prefix: &str, m: &DescriptorProto, out: &mut BTreeSet<String>) {
    let name = format!("{prefix}.{}", m.name());
    for f in &m.field {
        out.insert(format!(
            "field {name}.{} = {} {:?} {:?} {}",
            f.name(),
            f.number(),
            f.label(),
            f.r#type(),
            f.type_name()
        ));
    }
    for e in &m.enum_type {
        for v in &e.value {
            out.insert(format!(
                "enum {name}.{}.{} = {}",
                e.name(),
                v.name(),
                v.number()
            ));
        }
    }
    for nested in &m.nested_type {
        messages(&name, nested, out);
    }
}

fn surface() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(llm_pool::api::grpc::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let mut out = BTreeSet::new();
    for file in set.file.iter().filter(|f| f.package() == "llmpool.v1") {
        let package = file.package();
        for m in &file.message_type {
            messages(package, m, &mut out);
        }
        for e in &file.enum_type {
            for v in &e.value {
                out.insert(format!(
                    "enum {package}.{}.{} = {}",
                    e.name(),
                    v.name(),
                    v.number()
                ));
            }
        }
        for s in &file.service {
            for m in &s.method {
                out.insert(format!(
                    "rpc {package}.{}.{}({}{}) -> {}{}",
                    s.name(),
                    m.name(),
                    if m.client_streaming() { "stream " } else { "" },
                    m.input_type(),
                    if m.server_streaming() { "stream " } else { "" },
                    m.output_type()
                ));
            }
        }
    }
    out
}

#[test]
fn the_published_proto_only_grows() {
    let now = surface();
    if std::env::var_os("LLM_POOL_BLESS_PROTO").is_some() {
        let text: String = now.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(SNAPSHOT, text).expect("write the snapshot");
        return;
    }
    let published = std::fs::read_to_string(SNAPSHOT).expect("the snapshot is checked in");
    let gone: Vec<&str> = published
        .lines()
        .filter(|l| !l.is_empty() && !now.contains(*l))
        .collect();
    assert!(
        gone.is_empty(),
        "changed or removed since the snapshot (clients would break; add new fields and \
         methods instead):\n{}",
        gone.join("\n")
    );
    assert!(
        published.lines().count() > 50,
        "the snapshot covers the surface"
    );
}
