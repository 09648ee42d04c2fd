import { useEffect, useRef, useState } from 'react'
import { parseEventLogs, sha256, stringToBytes, toHex } from 'viem'
import { ETH, explainError, formatAmount, read, short } from '../chain.js'
import { cidFromBytes, fetchVerified, hexToBytes, sha256 as sha256Bytes, toHex as bytesToHex } from '../cid.js'
import { Loading, TxState, useApi, useTx } from '../components.jsx'
import { fmtDate, useApp } from '../context.js'
import { BuyerKey, MAX_PRIVATE_TEXT_BYTES, openBox, privateInput } from '../privacy.js'
import { LANGUAGES } from './Browse.jsx'
import { busy } from './Voice.jsx'

const LANGUAGE_NUMBERS = { zh: 0, en: 1, ja: 2, ko: 3, yue: 4 }
const STATUS = ['none', 'pending', 'fulfilled', 'disputed', 'settled', 'reversed', 'failed', 'expired']
export const FAIL_REASONS = [
  'the operator does not serve this model',
  'the voice’s files are missing',
  'the voice’s files are corrupt',
  'the voice is not sealed to this operator',
  'the text could not be fetched',
  'the text is malformed',
  'the voice cannot speak this language',
  'the text is too long',
  'the engine failed',
  'the audio could not be stored',
]

// Withdraw what a ledger (the router: refunds; the licence manager: sales) credits the account.
export function Withdraw({ role, asset, onDone, quiet = false }) {
  const { t, assets, chain } = useApp()
  const [credit, setCredit] = useState(null)
  const [tx, run] = useTx()
  const account = chain?.wallet?.account.address
  useEffect(() => {
    if (account) read(chain, role, 'creditOf', [account, asset]).then(setCredit)
  }, [account, role, asset, tx?.stage])
  if (credit === null || (quiet && credit === 0n && !tx)) return null
  const go = async () => {
    if (await run({ role, functionName: 'withdraw', args: [asset] })) onDone?.()
  }
  return (
    <span>
      {credit === 0n ? (
        <span className="note" data-testid="nothing-to-withdraw">{t('withdraw.nothing')}</span>
      ) : (
        <button type="button" onClick={go} disabled={busy(tx)} data-testid={`withdraw-${role}`}>
          {t('withdraw.button', { amount: formatAmount(credit, asset, assets) })}
        </button>
      )}
      <TxState state={tx} />
    </span>
  )
}

// Follows one request on the chain until it ends; then plays the audio (its SHA-256 checked
// against the digest the operator committed on-chain) or shows the failure and the refund.
function RequestFollow({ request }) {
  const { t, assets, chain } = useApp()
  const [status, setStatus] = useState('pending')
  const [outcome, setOutcome] = useState(null)
  const url = useRef(null)
  useEffect(() => {
    let live = true
    const router = chain.config.deployment.router
    const abi = chain.config.abis.router
    const look = async () => {
      const code = Number(await read(chain, 'router', 'requestStatus', [request.id]))
      const name = STATUS[code]
      if (!live) return
      setStatus(name)
      if (['fulfilled', 'settled', 'disputed'].includes(name)) {
        const [log] = await chain.pub.getContractEvents({
          address: router,
          abi,
          eventName: 'SynthesisFulfilled',
          args: { requestId: request.id },
          fromBlock: request.block,
        })
        const cid = cidFromBytes(log.args.outputCid)
        let audio, ok
        if (request.key) {
          // private: the stored box is checked against its CID, opened with the buyer's key, and the
          // audio inside against the digest on-chain
          const got = await fetchVerified(cid)
          audio = got.state === 'bad' ? null : await openBox(got.bytes, request.key.privateKey)
          ok = Boolean(audio) && bytesToHex(await sha256Bytes(audio)) === log.args.outputDigest.toLowerCase()
        } else {
          const got = await fetchVerified(cid, log.args.outputDigest)
          audio = got.bytes
          ok = got.state === 'checked'
        }
        if (ok) url.current = URL.createObjectURL(new Blob([audio], { type: 'audio/wav' }))
        if (live) setOutcome({ kind: 'audio', ok, digest: log.args.outputDigest, cid, private: Boolean(request.key) })
        return
      }
      if (name === 'failed' || name === 'expired') {
        let reason = t('speech.expired')
        if (name === 'failed') {
          const [log] = await chain.pub.getContractEvents({
            address: router,
            abi,
            eventName: 'SynthesisFailed',
            args: { requestId: request.id },
            fromBlock: request.block,
          })
          reason = FAIL_REASONS[log.args.reason] ?? `reason ${log.args.reason}`
        }
        if (live) setOutcome({ kind: 'refund', reason })
        return
      }
      if (live) setTimeout(look, 500)
    }
    look().catch((e) => live && setOutcome({ kind: 'error', message: e.message }))
    return () => {
      live = false
    }
  }, [request.id])
  const words = {
    pending: t('speech.pending'),
    fulfilled: t('speech.fulfilled'),
    settled: t('speech.settled'),
    failed: t('speech.failed', { reason: outcome?.reason ?? '' }),
    expired: t('speech.expired'),
  }
  return (
    <div
      className="request"
      data-testid="request"
      data-status={status}
      data-request={String(request.id)}
      data-private={request.key ? '1' : '0'}
    >
      <p role="status">{t('speech.status', { id: String(request.id), status: words[status] ?? status })}</p>
      {outcome?.kind === 'audio' &&
        (outcome.ok ? (
          <>
            <audio controls src={url.current} data-testid="speech-audio" />
            <a href={url.current} download={`request-${request.id}.wav`} data-testid="download">
              {t('speech.download')}
            </a>
            <small className="ok" data-testid="audio-check">
              {t('speech.audioOk', { digest: `${outcome.digest.slice(0, 14)}…` })}
            </small>
          </>
        ) : (
          <p className="error" role="alert" data-testid="audio-check">{t('speech.audioBad')}</p>
        ))}
      {outcome?.kind === 'refund' && (
        <div data-testid="refund">
          <p>{t('speech.refund', { amount: formatAmount(request.escrow, request.asset, assets) })}</p>
          <Withdraw role="router" asset={request.asset} />
        </div>
      )}
      {outcome?.kind === 'error' && <p className="error" role="alert">{outcome.message}</p>}
    </div>
  )
}

// The buyer's encryption key, once derived from the wallet's signature, for this page's life.
const KEYS = new Map()
const keyName = (chain) => `${chain.config.chain.id}:${chain.wallet.account.address}`

function AskForSpeech({ licence, model }) {
  const { t, lang, assets, chain } = useApp()
  const operators = model.operators.filter((o) => o.allowed).map((o) => o.operator)
  const [text, setText] = useState('')
  const [language, setLanguage] = useState(model.languages[0])
  const [operator, setOperator] = useState(operators[0] || '')
  const [fee, setFee] = useState(null)
  const [requests, setRequests] = useState([])
  const [sealed, setSealed] = useState(true) // private by default (docs/privacy.md)
  const [buyerKey, setBuyerKey] = useState(() => KEYS.get(keyName(chain)) || null)
  const [tx, run, setTx] = useTx()
  const offer = model.offers.find((o) => o.offer_id === licence.offer_id)
  const usePrice = offer?.tier === 'pay-per-use' && !offer.pack_size ? BigInt(offer.price) : 0n
  const asset = licence.asset
  useEffect(() => {
    if (operator) read(chain, 'router', 'operatorFee', [operator, asset]).then(setFee)
  }, [operator, asset])
  if (!operators.length) return <p className="note">{t('speech.noOperator')}</p>
  const escrow = fee === null ? null : usePrice + fee
  const send = async (event) => {
    event.preventDefault()
    const bytes = stringToBytes(text)
    let key = null
    let input = toHex(new Uint8Array([0, ...bytes]))
    let inputHash = sha256(bytes)
    if (sealed) {
      try {
        key = buyerKey || (await BuyerKey.derive(chain.wallet, chain.config.chain.id))
      } catch (error) {
        setTx({ stage: 'error', message: explainError(error, t, lang) })
        return
      }
      KEYS.set(keyName(chain), key)
      setBuyerKey(key)
      let operatorKey = hexToBytes(await read(chain, 'router', 'operatorPublicKey', [operator]))
      if (operatorKey.length === 65) operatorKey = operatorKey.slice(1)
      const sealedInput = await privateInput(text, key, operatorKey)
      input = bytesToHex(sealedInput.input)
      inputHash = bytesToHex(sealedInput.inputHash)
    }
    const block = await chain.pub.getBlock()
    const params = {
      modelId: BigInt(model.model_id),
      licenseId: BigInt(licence.license_id),
      operator,
      maxFee: fee,
      deadline: Number(block.timestamp) + 3600,
      params: BigInt(LANGUAGE_NUMBERS[language]) | (BigInt(model.dispute_window) << 88n),
      inputHash,
      input,
    }
    const steps = []
    const erc20 = BigInt(asset) !== 0n
    if (erc20 && escrow > 0n) {
      const allowance = await read(chain, 'erc20', 'allowance', [chain.wallet.account.address, chain.config.deployment.router], asset)
      if (allowance < escrow) {
        const label = t('tx.approving', { amount: formatAmount(escrow, asset, assets) })
        steps.push({ role: 'erc20', address: asset, functionName: 'approve', args: [chain.config.deployment.router, escrow], label })
      }
    }
    steps.push({ role: 'router', functionName: 'requestSynthesis', args: [params], value: erc20 ? 0n : escrow })
    const receipt = await run(steps)
    if (!receipt) return
    const [log] = parseEventLogs({ abi: chain.config.abis.router, logs: receipt.logs, eventName: 'SynthesisRequested' })
    setRequests((r) => [{ id: log.args.requestId, block: receipt.blockNumber, escrow, asset, key }, ...r])
  }
  return (
    <form className="ask" onSubmit={send} data-testid="ask-form">
      <h3>{t('speech.title')}</h3>
      <label>
        {t('speech.text')}
        <textarea value={text} onChange={(e) => setText(e.target.value)} required maxLength={900} rows={2} data-testid="speech-text" />
      </label>
      <label>
        {t('speech.language')}{' '}
        <select value={language} onChange={(e) => setLanguage(e.target.value)} data-testid="speech-language">
          {model.languages.map((l) => (
            <option key={l} value={l}>
              {LANGUAGES[l] || l}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t('speech.operator')}{' '}
        <select value={operator} onChange={(e) => setOperator(e.target.value)}>
          {operators.map((o) => (
            <option key={o} value={o}>
              {short(o)}
            </option>
          ))}
        </select>
      </label>
      {escrow !== null && (
        <p data-testid="escrow">
          {t('speech.escrow', {
            amount: formatAmount(escrow, asset, assets),
            use: formatAmount(usePrice, asset, assets),
            fee: formatAmount(fee, asset, assets),
          })}
        </p>
      )}
      <label className="inline">
        <input type="checkbox" checked={sealed} onChange={(e) => setSealed(e.target.checked)} data-testid="private" />{' '}
        {t('speech.private')}
      </label>
      {sealed ? (
        <p className="note">
          {t('speech.privateNote', { max: MAX_PRIVATE_TEXT_BYTES })}{' '}
          {buyerKey && <span data-testid="buyer-key">{t('speech.buyerKey', { address: buyerKey.address })}</span>}
        </p>
      ) : (
        <p className="note">{t('speech.public')}</p>
      )}
      <button type="submit" disabled={busy(tx) || escrow === null} data-testid="send-request">
        {t('speech.send')}
      </button>
      <TxState state={tx} />
      {requests.map((r) => (
        <RequestFollow key={String(r.id)} request={r} />
      ))}
    </form>
  )
}

function LicenceRow({ licence, onChanged }) {
  const { t, lang, assets, chain } = useApp()
  const [model] = useApi(`/models/${licence.model_id}`)
  const [open, setOpen] = useState(false)
  const [tx, run] = useTx()
  const offer = model?.offers.find((o) => o.offer_id === licence.offer_id)
  const renew = async () => {
    const price = BigInt(offer.price)
    const erc20 = BigInt(licence.asset) !== 0n
    const steps = []
    if (erc20) steps.push({ role: 'erc20', address: licence.asset, functionName: 'approve', args: [chain.config.deployment.licenses, price] })
    steps.push({ role: 'licenses', functionName: 'renewSubscription', args: [BigInt(licence.license_id), BigInt(offer.period)], value: erc20 ? 0n : price })
    if (await run(steps)) onChanged()
  }
  const cancel = async () => {
    if (await run({ role: 'licenses', functionName: 'cancelSubscription', args: [BigInt(licence.license_id)] })) onChanged()
  }
  return (
    <li className="licence" data-testid="licence" data-tier={licence.tier} data-licence={licence.license_id}>
      <h3>
        #{licence.license_id} <a href={`#/voice/${licence.model_id}`}>{model?.name || short(licence.model_id)}</a> — {t(`tier.${licence.tier}`)}
      </h3>
      <p>
        {licence.expires_at ? t('lic.expires', { date: fmtDate(licence.expires_at, lang) }) : t('lic.never')} ·{' '}
        {licence.uses_left !== null ? t('lic.usesLeft', { left: licence.uses_left }) : t('lic.usesUnlimited', { uses: licence.uses })} ·{' '}
        {formatAmount(licence.paid, licence.asset, assets)}
        {!licence.valid && <strong className="error"> · {t('lic.invalid')}</strong>}
        {licence.cancelled && <span className="note"> · {t('lic.cancelled')}</span>}
      </p>
      <div className="actions">
        {licence.tier === 'subscription' && offer && (
          <>
            <button type="button" onClick={renew} disabled={busy(tx)}>{t('lic.renew')}</button>
            {!licence.cancelled && <button type="button" onClick={cancel} disabled={busy(tx)}>{t('lic.cancel')}</button>}
          </>
        )}
        {licence.valid && model && (
          <button type="button" onClick={() => setOpen(!open)} aria-expanded={open} data-testid="ask">
            {t('lic.ask')}
          </button>
        )}
      </div>
      <TxState state={tx} />
      {open && model && <AskForSpeech licence={licence} model={model} />}
    </li>
  )
}

export function Licences() {
  const { t, chain, wallet } = useApp()
  const account = chain?.wallet ? wallet.account : null
  const [page, error, reload] = useApi(account ? `/accounts/${account}/licenses?limit=100` : null)
  if (!account) return <p className="note">{t('lic.connect')}</p>
  return (
    <section>
      <h1>{t('lic.title')}</h1>
      <p>
        {t('withdraw.refunds')}: <Withdraw role="router" asset={ETH} />
      </p>
      {!page ? (
        <Loading error={error} />
      ) : page.items.length ? (
        <ul className="licences">
          {page.items.map((l) => (
            <LicenceRow key={l.license_id} licence={l} onChanged={() => (reload(), setTimeout(reload, 1500))} />
          ))}
        </ul>
      ) : (
        <p className="note">{t('lic.none')}</p>
      )}
    </section>
  )
}
