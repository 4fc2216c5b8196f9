"""Software updates of a box: A/B root slots installed by RAUC, tried once, committed by a health check or
rolled back (docs/updates.md).

Root's side: `appliance update` (install, status, commit, fall back; modules `installer`, `boot`,
`request`, `report`), talking to the `rauc` command (`rauc`), recording in the update state directory
(`state`). The gate: `appliance health` (`health`). The runtime's side, unprivileged: it receives an
uploaded bundle and reads what root recorded (`upload`); it never calls RAUC itself.
"""
