//! The policy: which servers exist, which tools each agent may call on them, and which
//! files, secrets, programs and addresses each server may touch. `model` is what a
//! policy holds, `load` reads and validates one, `eval` checks calls and effects
//! against it, `verdict` turns a completed call into its decision.
mod eval;
mod globs;
mod load;
mod model;
mod passwd;
pub mod refs;
mod secrets;
pub mod verdict;

pub use globs::{Homes, NameList, PathGlobs};
pub use load::{DEFAULT_POLICY, PolicyError, PolicyErrors};
pub use model::{
    AgentRule, ArgumentsMode, CallFacts, EffectKind, Policy, RUNTIME_NOISE, SecretHit, SecretRule,
    ServerRule, UNREGISTERED, Unregistered, Violation,
};
pub use passwd::home_of;
pub use secrets::secret_class;
