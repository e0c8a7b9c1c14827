#!/usr/bin/env node
// Entry for `npx ftest`; everything lives in ftest/main.ts.
import { main } from '../ftest/main.ts';

await main(process.argv);
