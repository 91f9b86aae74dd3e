//! The commented starter spec written by `pf spec init`.

/// A commented starter spec for an agent called `name` (must be a DNS label).
pub fn starter(name: &str) -> String {
    STARTER.replace("{{name}}", name)
}

const STARTER: &str = r#"# Provability Fabric agent spec. Check it with `pf spec lint agent.yaml`.
# Reference: docs/spec.md; JSON Schema: schema/agentspec.schema.json.

# DNS label: lowercase letters, digits and '-'.
name: {{name}}
# Semantic version of this spec; bump it whenever the spec changes.
version: 0.1.0
description: What this agent does, in one sentence.

# Everything the agent may do. Anything not listed here is denied at run time.
capabilities:
  # Free text produced by the model.
  - name: text_generation
    constraints:
      max_length: 4000          # characters per answer
      content_filter: true      # redact e-mail, phone, card numbers, IBANs, API keys
    waiver: plain text output has no proof obligation yet

  # A tool called with JSON arguments.
  - name: search_docs
    kind: tool
    output_labels: [untrusted]  # what the tool returns is not trusted
    constraints:
      arguments:                # JSON Schema for the arguments object
        type: object
        properties:
          query: { type: string, maxLength: 200 }
        required: [query]
        additionalProperties: false
      rate_limit: { requests: 30, per: 1m }
      budget: { max_calls: 1000 }

# Rules across capabilities.
policies: []
#  - name: no-untrusted-recipients
#    type: information_flow
#    deny_labels: [untrusted]
#    sinks: [send_email.to]
#    unless: [user_request]

# Limits for the agent's container (Kubernetes quantities).
resources:
  cpu: 500m
  memory: 512Mi
  max_concurrent_calls: 4

# Proof obligations, checked by `pf verify` (lean | nnv | reach); paths are relative to this file.
proofs: []
#  - name: search_is_read_only
#    type: lean
#    file: proofs/Search.lean
#    export: proofs/Search.ndjson   # lean4export output that pf re-checks
#    theorem: Search.readOnly
#    covers: [search_docs]

# Who must sign the bundle (k of n keys; `pf key gen` makes a key pair).
# signers:
#   threshold: 1
#   keys:
#     - { name: release, public_key: keys/release.pub.pem }
"#;
