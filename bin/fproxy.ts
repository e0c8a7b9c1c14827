#!/usr/bin/env node
console.log("fproxy bin", process.version)
