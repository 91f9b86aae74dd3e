//! A real MCP server built with the official Rust SDK (`rmcp`), serving two tools on stdio:
//! `lookup_order` (in the test spec) and `delete_everything` (not in it). The `rmcp_interop`
//! integration test runs it as a child process under the guard's stdio proxy.

#[path = "../tests/rmcp_tools/mod.rs"]
mod rmcp_tools;

use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = rmcp_tools::server().serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
