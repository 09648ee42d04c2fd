// CIDs and hashes in the browser: what the gateway sends is checked here again, never trusted.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

function base32Decode(text) {
  let bits = 0
  let value = 0
  const out = []
  for (const char of text) {
    const index = ALPHABET.indexOf(char)
    if (index < 0) throw new Error(`not base32: ${char}`)
    value = (value << 5) | index
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255)
      bits -= 8
    }
  }
  return new Uint8Array(out)
}

function base32Encode(bytes) {
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31]
  return out
}

function varint(bytes, at) {
  let value = 0
  let shift = 0
  for (;;) {
    const byte = bytes[at++]
    value += (byte & 127) * 2 ** shift
    if (byte < 128) return [value, at]
    shift += 7
  }
}

export const RAW = 0x55

// {version, codec, digest (SHA-256 bytes or null)} of a CID string ("ipfs://" allowed).
export function parseCid(text) {
  const cid = String(text).replace(/^ipfs:\/\//, '').split('/')[0]
  if (cid.startsWith('Qm')) return { cid, version: 0, codec: 0x70, digest: null }
  if (!cid.startsWith('b')) throw new Error(`unsupported CID ${cid}`)
  const bytes = base32Decode(cid.slice(1))
  let at = 0
  let version, codec, hashCode, length
  ;[version, at] = varint(bytes, at)
  ;[codec, at] = varint(bytes, at)
  ;[hashCode, at] = varint(bytes, at)
  ;[length, at] = varint(bytes, at)
  const digest = hashCode === 0x12 && length === 32 ? bytes.slice(at, at + 32) : null
  return { cid, version, codec, digest }
}

// The string form of a binary CID as the router stores it (CIDv1 bytes -> base32 "b...").
export function cidFromBytes(hex) {
  const bytes = hexToBytes(hex)
  if (bytes[0] === 0x12 && bytes[1] === 0x20) return null // CIDv0 (base58): not produced by the oracle
  return 'b' + base32Encode(bytes)
}

export function hexToBytes(hex) {
  const clean = hex.replace(/^0x/, '')
  const out = new Uint8Array(clean.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16)
  return out
}

export function toHex(bytes) {
  return '0x' + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
}

// Fetch content by CID through the server's gateway and check it: a raw CID's SHA-256 here
// ("checked"), a chunked (dag-pb) one is checked by the gateway's store only ("gateway").
export async function fetchVerified(cidText, expectedDigestHex = null) {
  const { cid, codec, digest } = parseCid(cidText)
  const response = await fetch(`/ipfs/${cid}`)
  if (!response.ok) {
    let message = `${response.status}`
    try {
      message = (await response.json()).error.message
    } catch {}
    throw new Error(message)
  }
  const bytes = new Uint8Array(await response.arrayBuffer())
  const actual = await sha256(bytes)
  let state = 'gateway'
  if (expectedDigestHex) state = toHex(actual) === expectedDigestHex.toLowerCase() ? 'checked' : 'bad'
  else if (codec === RAW && digest) state = toHex(actual) === toHex(digest) ? 'checked' : 'bad'
  return { bytes, state, sha256: toHex(actual) }
}
