"""Run student code in a sandbox and bring back plain data only.

``plaindata`` encodes values (numbers, strings, arrays, tensors — never pickles); ``worker`` runs
inside the sandbox and executes cells and calls; ``launcher`` starts it under bubblewrap with
limits on memory, CPU time and processes; ``session`` drives one worker from the trusted side and
restarts it after a timeout or a crash.
"""
