"""What the hardware is and how to talk to it: boards, accelerators, GPIO lines, watchdogs."""
