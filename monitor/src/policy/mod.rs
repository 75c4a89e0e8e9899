//! The policy: which servers exist, which tools each agent may call on them, and which
//! files, secrets, programs and addresses each server may touch. `model` is what a
//! policy holds, `load` reads and validates one, `eval` checks calls and effects
//! against it, `verdict` turns a completed call into its decision; `secret_env` names
//! the static secrets of a server's environment and `token_lifetime` classifies
//! bearer tokens as short- or long-lived.
mod eval;
mod globs;
mod load;
mod model;
mod passwd;
pub mod refs;
mod secret_env;
mod secrets;
mod token_lifetime;
pub mod verdict;

pub use globs::{Homes, NameList, PathGlobs};
pub use load::{DEFAULT_POLICY, PolicyError, PolicyErrors};
pub use model::{
    AgentRule, ArgumentsMode, CallFacts, EffectKind, Policy, RUNTIME_NOISE, SecretHit, SecretRule,
    ServerRule, StaticSecretsMode, UNREGISTERED, Unregistered, Violation,
};
pub use passwd::home_of;
pub use secret_env::{
    BUILTIN_SECRET_ENV, MAX_STATIC_SECRETS, SecretEnv, SecretEnvRule, StaticSecret, StaticSecrets,
};
pub use secrets::secret_class;
pub use token_lifetime::{DEFAULT_SHORT_LIVED_S, Lifetime, lifetime};
