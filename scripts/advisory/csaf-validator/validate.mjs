// Validates CSAF 2.0 documents with the BSI csaf-validator-lib: the strict CSAF 2.0
// JSON schema plus every mandatory test (6.1.x). Offline: no informative tests.
// Usage: node validate.mjs FILE...   (exit 0 when all files are valid, 1 otherwise)
import { readFile } from 'node:fs/promises'
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import { csaf_2_0_strict } from '@secvisogram/csaf-validator-lib/schemaTests.js'

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...')
  process.exit(2)
}

const tests = [csaf_2_0_strict, ...Object.values(mandatory)]
let allValid = true
for (const file of files) {
  const doc = JSON.parse(await readFile(file, 'utf8'))
  const result = await validateStrict(tests, doc)
  const failed = result.tests.filter((t) => !t.isValid || t.errors.length > 0)
  if (!result.isValid || failed.length > 0) {
    allValid = false
    console.log(`INVALID ${file}`)
    for (const t of failed) {
      for (const e of t.errors) console.log(`  ${t.name} ${e.instancePath}: ${e.message}`)
    }
  } else {
    console.log(`VALID ${file} (${result.tests.length} tests)`)
  }
}
process.exit(allValid ? 0 : 1)
