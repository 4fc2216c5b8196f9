"""The safety chain: the stop output's supervisor process and the runtime's side of its socket."""
