// Independent CIDs for the Python tests: the reference JavaScript UnixFS importer
// (ipfs-unixfs-importer, an npm devDependency) with Kubo's `ipfs add` settings.
// Reads a JSON list on stdin of {"path", "chunkSize"?, "maxLinks"?} (Kubo's 262144 and 174 by
// default); prints one JSON object per file, in order:
// {"path", "v0", "v1", "blocks_v0": [cid...], "blocks_v1": [cid...]} (blocks only with --blocks).
import { readFileSync } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const withBlocks = process.argv.includes('--blocks')

function kuboOptions (cidVersion, chunkSize, maxLinks) {
  return {
    cidVersion,
    rawLeaves: cidVersion === 1,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize }),
    layout: balanced({ maxChildrenPerNode: maxLinks }),
    wrapWithDirectory: false
  }
}

async function add (content, cidVersion, chunkSize, maxLinks) {
  const blocks = new Map()
  const store = {
    async put (cid, bytes) { blocks.set(cid.toString(), bytes.length); return cid },
    async get (cid) { throw new Error('not needed') },
    async has (cid) { return blocks.has(cid.toString()) }
  }
  let root
  for await (const entry of importer([{ content }], store, kuboOptions(cidVersion, chunkSize, maxLinks))) root = entry.cid
  return { root: root.toString(), blocks: [...blocks.keys()].sort() }
}

const files = JSON.parse(readFileSync(0, 'utf8'))
for (const { path, chunkSize = 262144, maxLinks = 174 } of files) {
  const content = readFileSync(path)
  const v0 = await add(content, 0, chunkSize, maxLinks)
  const v1 = await add(content, 1, chunkSize, maxLinks)
  const out = { path, v0: v0.root, v1: v1.root }
  if (withBlocks) { out.blocks_v0 = v0.blocks; out.blocks_v1 = v1.blocks }
  process.stdout.write(JSON.stringify(out) + '\n')
}
