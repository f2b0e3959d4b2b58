"""Training on demand: the loop, the child process it runs in, the job queue shared by every
session. Imports core, text, weights."""
