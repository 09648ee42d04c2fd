import { useState } from 'react'
import { formatAmount, short } from '../chain.js'
import { Loading, useApi } from '../components.jsx'
import { useApp } from '../context.js'

export function Operator({ address }) {
  const { t, assets, wallet } = useApp()
  const [input, setInput] = useState(address || wallet.account || '')
  const shown = address || wallet.account
  const [record, error] = useApi(shown ? `/operators/${shown}` : null)
  return (
    <section>
      <h1>{t('op.title')}</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault()
          location.hash = `#/operator/${input.trim()}`
        }}
      >
        <label>
          {t('op.address')} <input value={input} onChange={(e) => setInput(e.target.value)} size="44" />
        </label>
        <button type="submit">{t('op.lookup')}</button>
      </form>
      {shown && !record && (error ? <p className="note">{t('op.notFound')} {error}</p> : <Loading />)}
      {record && (
        <dl className="facts" data-testid="operator">
          <dt>{t('op.address')}</dt>
          <dd className="address">{record.address}</dd>
          <dt>{t('op.stake')}</dt>
          <dd>{formatAmount(record.stake, '0x0000000000000000000000000000000000000000', assets)}</dd>
          <dt>{t('op.fees')}</dt>
          <dd>{record.fees.map((f) => formatAmount(f.fee, f.asset, assets)).join(', ') || '—'}</dd>
          <dt>{t('op.models')}</dt>
          <dd>
            {record.models_served.map((m) => (
              <div key={m}>
                <a href={`#/voice/${m}`}>{short(m)}</a>
              </div>
            ))}
          </dd>
          <dt>{t('op.fulfilled')}</dt>
          <dd data-testid="op-fulfilled">{record.fulfilled}</dd>
          <dt>{t('op.failed')}</dt>
          <dd data-testid="op-failed">{record.failed}</dd>
          <dt>{t('op.expired')}</dt>
          <dd>{record.expired}</dd>
          <dt>{t('op.pending')}</dt>
          <dd>{record.pending}</dd>
        </dl>
      )}
    </section>
  )
}
