//! The job's Ray `runtime_env` as every Ray-based backend sends it.

use serde_json::{json, Map, Value};

use crate::SubmitRequest;

impl SubmitRequest {
    /// Ray's `runtime_env` for this attempt: the spec's, with the broker's
    /// `extra_env` added to `env_vars` (the broker's values win: they carry
    /// trace context and endpoints the job must not override by accident);
    /// `None` when there is nothing to send.
    pub fn ray_runtime_env(&self) -> Option<Value> {
        let env = &self.spec.runtime_env;
        let mut out = Map::new();
        let mut env_vars = env.env_vars.clone();
        env_vars.extend(self.extra_env.clone());
        if !env_vars.is_empty() {
            out.insert("env_vars".into(), json!(env_vars));
        }
        if let Some(dir) = &env.working_dir {
            out.insert("working_dir".into(), json!(dir));
        }
        if !env.pip.is_empty() {
            out.insert("pip".into(), json!(env.pip));
        }
        if !env.py_modules.is_empty() {
            out.insert("py_modules".into(), json!(env.py_modules));
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }
}
