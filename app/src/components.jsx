import { useEffect, useRef, useState } from 'react'
import { explainError, sendTx, short } from './chain.js'
import { fetchVerified } from './cid.js'
import { api, useApp } from './context.js'

// One transaction's state, from checking to confirmation, in words.
export function useTx() {
  const { t, lang, chain } = useApp()
  const [state, setState] = useState(null)
  const run = async (steps) => {
    try {
      let receipt
      for (const step of Array.isArray(steps) ? steps : [steps]) {
        receipt = await sendTx(chain, step, (s) => setState({ ...s, label: step.label }))
      }
      return receipt
    } catch (error) {
      setState((s) => ({ stage: 'error', message: error.message === 'reverted' ? t('tx.reverted') : explainError(error, t, lang), hash: s?.hash }))
      return null
    }
  }
  return [state, run, setState]
}

export function TxState({ state }) {
  const { t } = useApp()
  if (!state) return null
  const text = {
    simulating: t('tx.simulating'),
    signing: state.label || t('tx.signing'),
    pending: t('tx.pending', { hash: short(state.hash) }),
    confirmed: t('tx.confirmed', { block: String(state.block) }),
    reverted: t('tx.reverted'),
    error: state.message,
  }[state.stage]
  const role = state.stage === 'error' || state.stage === 'reverted' ? 'alert' : 'status'
  return (
    <p className={`tx tx-${state.stage}`} role={role} data-testid="tx-state" data-stage={state.stage}>
      {text}
    </p>
  )
}

// Plays a voice's preview: the model's metadata names the clip's CID; the bytes come through the
// server's gateway and are hashed here before anything is played.
export function PreviewPlayer({ modelId, cid: knownCid }) {
  const { t } = useApp()
  const [state, setState] = useState({ stage: 'idle' })
  const urlRef = useRef(null)
  useEffect(() => () => urlRef.current && URL.revokeObjectURL(urlRef.current), [])
  const play = async () => {
    setState({ stage: 'loading' })
    try {
      const cid = knownCid ?? (await api(`/models/${modelId}`)).preview
      if (!cid) return setState({ stage: 'none' })
      const { bytes, state: check } = await fetchVerified(cid)
      if (check === 'bad') return setState({ stage: 'bad' })
      urlRef.current = URL.createObjectURL(new Blob([bytes], { type: 'audio/wav' }))
      setState({ stage: 'ready', check, url: urlRef.current })
    } catch (error) {
      setState({ stage: 'error', message: error.message })
    }
  }
  return (
    <div className="preview" data-testid="preview">
      {state.stage === 'ready' ? (
        <>
          <audio controls autoPlay src={state.url} data-testid="preview-audio" />
          <small className={state.check === 'checked' ? 'ok' : 'note'} data-testid="preview-check">
            {t(state.check === 'checked' ? 'preview.checked' : 'preview.gateway')}
          </small>
        </>
      ) : (
        <button type="button" onClick={play} disabled={state.stage === 'loading'} data-testid="play-preview">
          {state.stage === 'loading' ? t('preview.loading') : t('preview.play')}
        </button>
      )}
      {state.stage === 'bad' && <small className="error" role="alert">{t('preview.bad')}</small>}
      {state.stage === 'none' && <small className="note">{t('preview.none')}</small>}
      {state.stage === 'error' && <small className="error" role="alert">{state.message}</small>}
    </div>
  )
}

export function Loading({ error }) {
  const { t } = useApp()
  if (error) return <p className="error" role="alert">{t('common.error', { message: error })}</p>
  return <p className="note">{t('common.loading')}</p>
}

// GET an index API path; reload() fetches it again (after a transaction, on a live event).
export function useApi(path) {
  const [data, setData] = useState(null)
  const [error, setError] = useState('')
  const [tick, setTick] = useState(0)
  useEffect(() => {
    if (!path) return
    let live = true
    api(path).then(
      (d) => live && (setData(d), setError('')),
      (e) => live && setError(e.message),
    )
    return () => {
      live = false
    }
  }, [path, tick])
  return [data, error, () => setTick((n) => n + 1)]
}

// Server-sent events of the index (new licences, uses, fulfilments, failures): calls onEvent.
export function useEvents(query, onEvent) {
  const handler = useRef(onEvent)
  handler.current = onEvent
  useEffect(() => {
    if (!query) return
    const source = new EventSource(`/events?${query}`)
    const kinds = ['license_purchased', 'use_requested', 'fulfilled', 'failed', 'expired', 'settled', 'disputed', 'dispute_upheld']
    const listener = (event) => handler.current(event.type, JSON.parse(event.data))
    for (const kind of kinds) source.addEventListener(kind, listener)
    return () => source.close()
  }, [query])
}
