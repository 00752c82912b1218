"""Split an int8 model across two devices: cuts, parts, costs, the pair firmware, Ethos-U via Vela."""
