#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bytes -> positions -> schema -> typed model: must never panic.
    if let Ok(text) = flow_dsl::yaml_loader::decode_utf8("fuzz.yaml", data.to_vec()) {
        let file = flow_dsl::source::SourceFile::new("fuzz.yaml", text);
        if let Ok(node) = flow_dsl::yaml_loader::parse(&file) {
            let _ = flow_dsl::schema::validate(flow_dsl::schema::DocumentKind::Campaign, &node);
        }
    }
});
