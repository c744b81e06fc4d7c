//! Clients of corecast's own protocols, used by the integration tests and the load tool.
