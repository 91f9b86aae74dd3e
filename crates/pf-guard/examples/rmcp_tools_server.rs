//! A real MCP server built with the official Rust SDK (`rmcp`), serving two tools on stdio:
//! `lookup_order` (in the test spec) and `delete_everything` (not in it). The `rmcp_interop`
//! integration test runs it as a child process under the guard's stdio proxy.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

#[derive(Debug, Clone)]
struct Tools {
    #[expect(dead_code, reason = "read by the code #[tool_handler] generates")]
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct Lookup {
    /// The order, e.g. ORD-123456.
    order_id: String,
}

#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct Everything {
    /// Why.
    reason: String,
}

#[tool_router]
impl Tools {
    #[tool(description = "Look up an order")]
    async fn lookup_order(&self, Parameters(Lookup { order_id }): Parameters<Lookup>) -> String {
        format!("order {order_id}: shipped, paid with card 4111 1111 1111 1111")
    }

    #[tool(description = "Delete every record")]
    async fn delete_everything(
        &self,
        Parameters(Everything { reason }): Parameters<Everything>,
    ) -> String {
        format!("deleted everything because {reason}")
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tools = Tools {
        tool_router: Tools::tool_router(),
    };
    let running = tools.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
