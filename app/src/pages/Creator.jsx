import { useEffect, useState } from 'react'
import { formatUnits, keccak256, parseUnits, stringToBytes, toHex } from 'viem'
import { ETH, formatAmount, read, short } from '../chain.js'
import { Loading, TxState, useApi, useEvents, useTx } from '../components.jsx'
import { api, fmtDate, useApp } from '../context.js'
import { TIERS } from './Browse.jsx'
import { Withdraw } from './Licences.jsx'
import { Terms, busy, canonical } from './Voice.jsx'

const TIER_NUMBERS = { buyout: 0, subscription: 1, 'pay-per-use': 2 }

// Publish an offer: the server builds the ODRL document for the terms; the page hashes it itself,
// shows it in words, and only then asks the wallet to sign publishOffer with that hash.
function Publish({ model }) {
  const { t, assets, chain } = useApp()
  const [form, setForm] = useState({ tier: 'subscription', asset: ETH, price: '0.02', days: '30', pack: '10', commercial: false, attribution: false, transferable: false })
  const [checked, setChecked] = useState(null)
  const [error, setError] = useState('')
  const [tx, run] = useTx()
  const set = (key) => (e) => {
    setChecked(null)
    setForm({ ...form, [key]: e.target.type === 'checkbox' ? e.target.checked : e.target.value })
  }
  const decimals = (assets[form.asset.toLowerCase()] || { decimals: 18 }).decimals
  const terms = () => ({
    tier: form.tier,
    price: parseUnits(form.price || '0', decimals).toString(),
    asset: form.asset,
    period: form.tier === 'subscription' ? String(Number(form.days) * 86400) : '0',
    pack_size: form.tier === 'pay-per-use' ? form.pack || '0' : '0',
    permissions: String(1 | (form.commercial ? 2 : 0)),
    attribution: String(form.attribution),
    transferable: String(form.transferable),
  })
  const check = async () => {
    setError('')
    try {
      const query = new URLSearchParams({ model_id: model.model_id, owner: chain.wallet.account.address, ...terms() })
      const answer = await api(`/odrl/offer-policy?${query}`)
      const hash = keccak256(stringToBytes(canonical(answer.policy)))
      if (hash !== answer.policy_hash) throw new Error(t('offer.hashBad'))
      setChecked({ ...answer, hash, terms: terms() })
    } catch (e) {
      setError(e.message)
    }
  }
  const publish = () => {
    const x = checked.terms
    const struct = {
      modelId: BigInt(model.model_id),
      tier: TIER_NUMBERS[x.tier],
      asset: x.asset,
      price: BigInt(x.price),
      period: Number(x.period),
      maxUses: 0,
      packSize: Number(x.pack_size),
      validUntil: 0n,
      maxLicenses: 0,
      permissions: Number(x.permissions),
      prohibitions: 0,
      attribution: x.attribution === 'true',
      transferable: x.transferable === 'true',
      purposes: 0,
      policyHash: checked.hash,
    }
    return run({ role: 'offers', functionName: 'publishOffer', args: [struct, toHex(new Uint8Array())] })
  }
  return (
    <details className="publish">
      <summary>{t('creator.publish')}</summary>
      <div className="filters">
        <label>
          {t('publish.tier')}
          <select value={form.tier} onChange={set('tier')} data-testid="publish-tier">
            {TIERS.map((tier) => (
              <option key={tier} value={tier}>{t(`tier.${tier}`)}</option>
            ))}
          </select>
        </label>
        <label>
          {t('browse.asset')}
          <select value={form.asset} onChange={set('asset')}>
            {Object.values(assets).map((a) => (
              <option key={a.address} value={a.address}>{a.symbol}</option>
            ))}
          </select>
        </label>
        <label>
          {t('publish.price')}
          <input value={form.price} onChange={set('price')} inputMode="decimal" size="8" data-testid="publish-price" />
        </label>
        {form.tier === 'subscription' && (
          <label>
            {t('publish.period')}
            <input value={form.days} onChange={set('days')} inputMode="numeric" size="4" />
          </label>
        )}
        {form.tier === 'pay-per-use' && (
          <label>
            {t('publish.pack')}
            <input value={form.pack} onChange={set('pack')} inputMode="numeric" size="4" />
          </label>
        )}
        <label className="inline"><input type="checkbox" checked={form.commercial} onChange={set('commercial')} /> {t('publish.commercial')}</label>
        <label className="inline"><input type="checkbox" checked={form.attribution} onChange={set('attribution')} /> {t('offer.attribution')}</label>
        <label className="inline"><input type="checkbox" checked={form.transferable} onChange={set('transferable')} /> {t('offer.transferable')}</label>
        <button type="button" onClick={check} data-testid="publish-check">{t('publish.check')}</button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {checked && (
        <div data-testid="publish-terms">
          <Terms policy={checked.policy} />
          <p className="ok">{t('publish.hash', { hash: `${checked.hash.slice(0, 18)}…` })}</p>
          <button type="button" onClick={publish} disabled={busy(tx)} data-testid="publish-send">{t('publish.send')}</button>
        </div>
      )}
      <TxState state={tx} />
    </details>
  )
}

// Revenue per day as bars, drawn by hand (no chart library): one series per asset.
export function RevenueChart({ days, asset }) {
  const { assets, lang } = useApp()
  const info = assets[asset.toLowerCase()] || { decimals: 18, symbol: short(asset) }
  const points = days.filter((d) => d.asset.toLowerCase() === asset.toLowerCase())
  if (!points.length) return null
  const values = points.map((d) => Number(formatUnits(BigInt(d.amount), info.decimals)))
  const max = Math.max(...values) || 1
  const width = 320
  const height = 120
  const bar = Math.min(40, (width - 40) / values.length)
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height + 30}`} role="img" aria-label={`${info.symbol} per day`} data-testid="revenue-chart">
        <line x1="30" y1={height} x2={width} y2={height} stroke="currentColor" strokeWidth="1" />
        <text x="0" y="12" fontSize="10" fill="currentColor">{max.toPrecision(3)}</text>
        <text x="0" y={height} fontSize="10" fill="currentColor">0</text>
        {values.map((v, i) => {
          const h = (v / max) * (height - 10)
          const x = 34 + i * bar
          return (
            <g key={points[i].day}>
              <rect x={x} y={height - h} width={bar - 4} height={h} fill="#2563eb">
                <title>{`${points[i].day}: ${v} ${info.symbol}`}</title>
              </rect>
              <text x={x} y={height + 14} fontSize="9" fill="currentColor">
                {new Date(points[i].day).toLocaleDateString(lang === 'zh' ? 'zh-CN' : 'en-GB', { month: 'numeric', day: 'numeric' })}
              </text>
            </g>
          )
        })}
      </svg>
      <figcaption>{info.symbol}</figcaption>
    </figure>
  )
}

function Collect({ model, asset, onDone }) {
  const { t, assets, chain } = useApp()
  const [tx, run] = useTx()
  const go = async () => {
    const steps = []
    for (const role of ['licenses', 'router']) {
      const [share] = await read(chain, role, 'potOf', [BigInt(model), asset])
      if (share > 0n) steps.push({ role, functionName: 'distribute', args: [BigInt(model), asset] })
    }
    if (await run(steps)) onDone()
  }
  const symbol = (assets[asset.toLowerCase()] || { symbol: short(asset) }).symbol
  return (
    <span>
      <button type="button" onClick={go} disabled={busy(tx)} data-testid="collect">
        {t('creator.collect', { asset: symbol })}
      </button>
      <TxState state={tx} />
    </span>
  )
}

function Retire({ model }) {
  const { t, lang, chain } = useApp()
  const [notice, setNotice] = useState(null)
  const [tx, run] = useTx()
  useEffect(() => {
    read(chain, 'registry', 'retirementNotice', []).then((n) => setNotice(Number(n)))
  }, [])
  if (model.status !== 'active' || notice === null) return null
  const ends = Math.floor(Date.now() / 1000) + notice
  return (
    <div className="retire">
      <p className="note" data-testid="retire-notice">{t('creator.retireNotice', { date: fmtDate(ends, lang) })}</p>
      <button type="button" onClick={() => run({ role: 'registry', functionName: 'retire', args: [BigInt(model.model_id)] })} disabled={busy(tx)}>
        {t('creator.retire')}
      </button>
      <TxState state={tx} />
    </div>
  )
}

function CreatedModel({ item }) {
  const { t } = useApp()
  const [model] = useApi(`/models/${item.model_id}`)
  const sold = Object.fromEntries(TIERS.map((tier) => [tier, 0]))
  for (const o of model?.offers || []) sold[o.tier] += o.sold
  return (
    <li className="card" data-testid="created-model">
      <h3>
        <a href={`#/voice/${item.model_id}`}>{item.name || short(item.model_id)}</a>
      </h3>
      {model && (
        <p data-testid="tier-uses">
          {t('creator.tierUses')}: {TIERS.map((tier) => `${t(`tier.${tier}`)} ${model.uses_by_tier[tier]}`).join(' · ')}
        </p>
      )}
      <p>
        {t('voice.licences')}: {TIERS.map((tier) => `${t(`tier.${tier}`)} ${sold[tier]}`).join(' · ')}
      </p>
      {model && <Retire model={model} />}
      {model && <Publish model={model} />}
    </li>
  )
}

export function Creator() {
  const { t, chain, wallet, assets } = useApp()
  const account = chain?.wallet ? wallet.account : null
  const [models, modelsError] = useApi(account ? `/models?creator=${account}&limit=100` : null)
  const [earnings, , reload] = useApi(account ? `/creators/${account}/earnings` : null)
  const [live, setLive] = useState(0)
  const [round, setRound] = useState(0) // a collect or withdraw changed the balances: read them again
  const changed = () => {
    setRound((n) => n + 1)
    reload()
    setTimeout(reload, 1500) // the index follows the chain a moment later
  }
  useEvents(account ? `account=${account}` : null, () => {
    setLive((n) => n + 1)
    reload()
  })
  if (!account) return <p className="note">{t('creator.connect')}</p>
  const assetList = [ETH, ...Object.keys(assets).filter((a) => BigInt(a) !== 0n)]
  const pending = (earnings?.created_models || []).filter((m) => BigInt(m.pending) > 0n)
  return (
    <section>
      <h1>
        {t('creator.title')} {live ? <small className="ok">● {t('creator.live')}</small> : null}
      </h1>
      <h2>{t('creator.withdrawable')}</h2>
      <ul className="plain" key={round}>
        {assetList.map((asset) => (
          <li key={asset} data-testid="withdrawable" data-asset={asset}>
            {(assets[asset.toLowerCase()] || { symbol: short(asset) }).symbol}:{' '}
            <Withdraw role="licenses" asset={asset} onDone={reload} quiet />{' '}
            <Withdraw role="router" asset={asset} onDone={reload} quiet /> <small className="note">{t('creator.sources')}</small>
          </li>
        ))}
      </ul>
      {pending.length ? (
        <>
          <h2>{t('creator.pending')}</h2>
          <ul className="plain">
            {pending.map((m) => (
              <li key={m.model_id + m.asset} data-testid="pending">
                {short(m.model_id)}: {formatAmount(m.pending, m.asset, assets)} <Collect model={m.model_id} asset={m.asset} onDone={changed} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h2>{t('creator.revenue')}</h2>
      {earnings ? (
        <div className="charts">
          {[...new Set(earnings.received_by_day.map((d) => d.asset))].map((asset) => (
            <RevenueChart key={asset} days={earnings.received_by_day} asset={asset} />
          ))}
          <table>
            <caption>{t('creator.received')}</caption>
            <tbody>
              {earnings.received.map((r, i) => (
                <tr key={i}>
                  <td>{short(r.model_id)}</td>
                  <td>{r.party}</td>
                  <td>{formatAmount(r.amount, r.asset, assets)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <Loading />
      )}
      <h2>{t('creator.usesByTier')}</h2>
      {models ? (
        models.items.length ? (
          <ul className="cards">
            {models.items.map((item) => (
              <CreatedModel key={item.model_id} item={item} />
            ))}
          </ul>
        ) : (
          <p className="note">{t('creator.none')}</p>
        )
      ) : (
        <Loading error={modelsError} />
      )}
    </section>
  )
}
