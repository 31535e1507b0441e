"""Anchor: the Python MCP SDK (the seed's stack) serving one trivial tool over stdio."""
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("anchor")


@mcp.tool()
def ping(x: int) -> int:
    """Return x."""
    return x


if __name__ == "__main__":
    mcp.run()
