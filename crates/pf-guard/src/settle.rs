//! Labelling work a check leaves for later (a large tool output's information-flow labels),
//! finished off the response path once the answer is on its way.

use std::sync::{Arc, Mutex};

use crate::enforcer::Enforcer;
use crate::lock::lock;
use crate::mcp::McpSession;
use crate::openai_chat::ChatSession;

/// A guard session whose enforcer may hold outputs checked but not yet labelled.
pub trait Settle: Send + 'static {
    /// Whether labelling work is waiting.
    fn unsettled(&self) -> bool;
    /// Does the waiting labelling work now.
    fn settle(&mut self);
}

impl<E: Enforcer + 'static> Settle for McpSession<E> {
    fn unsettled(&self) -> bool {
        self.enforcer().unsettled()
    }

    fn settle(&mut self) {
        McpSession::settle(self);
    }
}

impl<E: Enforcer + 'static> Settle for ChatSession<E> {
    fn unsettled(&self) -> bool {
        self.enforcer.unsettled()
    }

    fn settle(&mut self) {
        self.enforcer.settle();
    }
}

/// Settles `session` on a blocking thread when it has work waiting (at once, on this thread,
/// outside a tokio runtime). Call it after letting go of the session's lock; the session's next
/// decision settles first anyway, so this only moves the work off the answer's path.
pub fn in_background<S: Settle>(session: &Arc<Mutex<S>>) {
    if !lock(session).unsettled() {
        return;
    }
    let session = session.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || lock(&session).settle());
        }
        Err(_) => lock(&session).settle(),
    }
}
