"""The inputs as written: the plan and site models, the model catalog, the YAML loader with
positions, schema errors as file:line:col. Imports only the standard library, yaml, pydantic."""
