//! `bulkhost:plugin/log`: a plugin's messages in the host's log, named by the plugin, and
//! bounded in number and length so a chatty plugin cannot flood it.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::log::{self, Level};

/// Messages one invocation may log before the host drops the rest.
const LOG_MESSAGES: u32 = 1000;
/// Characters of one log message the host keeps.
const LOG_CHARS: usize = 4096;

/// Which plugin logs, and how much it has logged in this invocation.
pub struct LogCtx {
    plugin: Arc<str>,
    logged: u32,
}

impl LogCtx {
    /// Logs for `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        LogCtx { plugin, logged: 0 }
    }

    /// The view the generated bindings call.
    pub fn view(&mut self) -> Log<'_> {
        Log { ctx: self }
    }
}

/// The interface's implementation over a borrowed [`LogCtx`].
pub struct Log<'a> {
    ctx: &'a mut LogCtx,
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = Log<'a>;
}

/// Adds the interface to `linker`; `get` borrows the context from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> Log<'_>,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}

/// `message` cut to at most [`LOG_CHARS`] bytes, on a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > LOG_CHARS {
        let mut end = LOG_CHARS;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

impl log::Host for Log<'_> {
    fn log(&mut self, level: Level, message: String) {
        let ctx = &mut *self.ctx;
        ctx.logged += 1;
        if ctx.logged > LOG_MESSAGES {
            return;
        }
        let message = bounded(message);
        let plugin = &*ctx.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        if ctx.logged == LOG_MESSAGES {
            tracing::warn!(
                plugin,
                "further log messages of this invocation are dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(LOG_CHARS);
        let cut = bounded(message);
        assert!(cut.len() <= LOG_CHARS && cut.len() > LOG_CHARS - 2);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short".into()), "short");
    }
}
