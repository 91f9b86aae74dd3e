//! The rmcp tool server shared by the `rmcp_tools_server` example (stdio) and the
//! `rmcp_interop` test (Streamable HTTP): a real MCP server built with the official Rust SDK.

#![allow(dead_code)]

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};

/// Two tools: `lookup_order` (in the test spec) and `delete_everything` (not in it).
#[derive(Debug, Clone)]
pub struct Tools {
    // Read by the code `#[tool_handler]` generates.
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

/// The server with its tool router.
pub fn server() -> Tools {
    Tools {
        tool_router: Tools::tool_router(),
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}
