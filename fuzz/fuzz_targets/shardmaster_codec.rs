//! The shard master's decoders over arbitrary bytes: replicated commands, operations,
//! configs and snapshot streams never panic, and whatever decodes re-encodes to
//! something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_shardmaster::{
    decode_command, decode_config, encode_command, encode_config, MasterState, Op,
    SnapshotRestore,
};

fuzz_target!(|data: &[u8]| {
    if let Ok((client, seq, op)) = decode_command(data) {
        let again = decode_command(&encode_command(client, seq, &op)).expect("re-decode command");
        assert_eq!(again, (client, seq, op));
    }
    if let Ok(op) = Op::decode(data) {
        assert_eq!(Op::decode(&op.encode()).expect("re-decode op"), op);
    }
    if let Ok(config) = decode_config(data) {
        assert_eq!(decode_config(&encode_config(&config)).expect("re-decode config"), config);
    }
    // A snapshot stream: the input cut into chunks at 0xff bytes.
    let mut restore = SnapshotRestore::new();
    let mut ok = true;
    for chunk in data.split(|&b| b == 0xff) {
        if restore.push(chunk).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        if let Ok(state) = restore.finish() {
            let back = MasterState::restore(state.snapshot_chunks()).expect("re-restore");
            assert_eq!(back.configs(), state.configs());
        }
    }
});
