//! `hostile-describe`: a plugin whose `describe` sleeps for an hour, waiting in WASI (on the
//! clock) rather than spinning in wasm. The host asks `describe` when it loads a component, so
//! this is what an upload, a directory sync and a start must survive.

use std::time::Duration;

use bulkhost_plugin_sdk::{DatasetInfo, GenerateError, Output, Params, Plugin};

struct Sleepy;

impl Plugin for Sleepy {
    fn datasets() -> Vec<DatasetInfo> {
        std::thread::sleep(Duration::from_secs(3600));
        Vec::new()
    }

    fn generate(_dataset: &str, _params: &Params, _out: &mut Output) -> Result<(), GenerateError> {
        Ok(())
    }
}

bulkhost_plugin_sdk::export_plugin!(Sleepy);
