//! Customization configs: arbitrary text parsed as the TOML config, then applied to a
//! conversation in every domain it defines.
#![no_main]

use std::path::Path;

use cdr_data::Message;
use cdr_prompt::Customization;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Customization::from_toml(text, Path::new("fuzz.toml")) else {
        return;
    };
    let names: Vec<String> = config.domain_names().map(str::to_string).collect();
    let conversation = [Message::system("Be brief."), Message::user("2 + 2?")];
    for name in &names {
        let _ = config.canonical_domain(name);
        let _ = config.route_by_field(None, Some(name));
        let _ = config.apply(&conversation, name, "row-0");
        let _ = config.apply(&conversation[1..], name, "row-1");
    }
});
