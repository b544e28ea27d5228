// The official Node client (@clickhouse/client) on its default settings against the embedded warehouse.
// Prints one JSON object of what it saw; test_server_node_client.py runs it and checks the figures.
import { createClient } from '@clickhouse/client'

const [url, username, password, database] = process.argv.slice(2)
const client = createClient({ url, username, password, database })
const seen = {}

const version = await client.query({ query: 'SELECT version() AS v, currentUser() AS u', format: 'JSONEachRow' })
seen.version = await version.json()

// A 1M-row result read as a stream, row by row.
const stream = await client.query({ query: 'SELECT number FROM numbers(1000000)', format: 'JSONCompactEachRow' })
let rows = 0
let sum = 0n
for await (const batch of stream.stream()) {
  for (const row of batch) {
    rows += 1
    sum += BigInt(row.json()[0])
  }
}
seen.streamed = { rows, sum: sum.toString() }

await client.command({
  query: 'CREATE TABLE node_calls (id UInt32, model String, at DateTime64(3, \'UTC\')) ENGINE = MergeTree ORDER BY id',
})
const values = Array.from({ length: 10000 }, (_, i) => ({ id: i, model: `model ${i % 7}`, at: '2026-06-01 12:00:00.000' }))
await client.insert({ table: 'node_calls', values, format: 'JSONEachRow' })
const counted = await client.query({
  query: 'SELECT count() AS n, uniqExact(model) AS models FROM node_calls',
  format: 'JSONEachRow',
})
seen.inserted = await counted.json()

// An error part-way through a streamed result: the client finds ClickHouse's tagged exception block.
try {
  const failing = await client.query({
    query: 'SELECT throwIf(number = 900000, \'node sees this\') AS x FROM numbers(1000000)',
    format: 'JSONCompactEachRow',
  })
  for await (const batch of failing.stream()) {
    rows += batch.length
  }
  seen.error = null
} catch (error) {
  seen.error = String(error.message)
}

await client.close()
console.log(JSON.stringify(seen))
