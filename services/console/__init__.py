"""The ops console: a web page for marketing ops that uses only the services' public APIs."""
