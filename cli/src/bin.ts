#!/usr/bin/env node
import { runCli } from './cli.js';

// exitCode rather than process.exit(): stdout (a JSON result in a pipe) is flushed before exit.
process.exitCode = await runCli(process.argv.slice(2));
